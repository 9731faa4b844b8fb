"""The evaluation benchmark (paper Sec. 4: 16 scenes x 3 styles, the paper's test set being unreleased).

- `catalog`: the scene/style catalogs (`benchmark/catalog.json` and users' own), `load_catalog`,
  `active_catalog`; the Dagster partitions are built from it.
- `user_catalog`: the working folder's catalog of the designer's shots (`register_shot`, `forget_shot`).
- `scenes`, `styles`: the scripts that built `benchmark/scenes/*.blend` and `benchmark/styles/*.png`
  (`python -m vf3d.benchmark.scenes`, `python -m vf3d.benchmark.styles`).
"""
