"""The evaluation benchmark (paper Sec. 4: 16 scenes x 3 styles, the paper's test set being unreleased).

- `catalog`: the scene/style catalogs (`benchmark/catalog.json` and users' own), `load_catalog`,
  `active_catalog`; the Dagster partitions are built from it.
- `scenes`, `styles`: the scripts that built `benchmark/scenes/*.blend` and `benchmark/styles/*.png`
  (`python -m vf3d.benchmark.scenes`, `python -m vf3d.benchmark.styles`).
"""
