"""The benchmark table, laid out like the paper's Table 2: rows per method, columns per metric, per category.

Our rows come from per-partition metric records; the paper's published rows sit beside them. Values computed
with the `tiny` profile are random-model numbers: their rows say so in the `profile` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from evaluation.metrics import METRICS as COLUMNS  # noqa: E402 - one list of metric names
HEADERS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "psnr_d": "PSNR-D↑", "clip_a": "CLIP-A↑",
           "musiq": "MUSIQ↑", "clip_i": "CLIP-I↑", "subject_consistency": "SC↑", "background_consistency": "BC↑"}
CATEGORIES = ("object-centric", "indoor", "outdoor", "transition")


def benchmark_table(records: Iterable[Mapping], paper_rows: Mapping[str, Mapping[str, float | None]]) -> pd.DataFrame:
    """One row per (method, profile, category) averaged over partitions, plus 'overall', plus the paper's rows.

    Each record holds: method, profile, category, and the metric values (COLUMNS).
    """
    frame = pd.DataFrame(list(records))
    rows = []
    if not frame.empty:
        for (method, profile), group in frame.groupby(["method", "profile"], sort=True):
            for category in (*CATEGORIES, "overall"):
                part = group if category == "overall" else group[group["category"] == category]
                if part.empty:
                    continue
                rows.append({"method": f"SAG + {method.upper() if method == 'ggi' else method} (ours)",
                             "profile": profile, "category": category, "videos": len(part),
                             **{c: part[c].mean() for c in COLUMNS}})
    for method, values in paper_rows.items():
        rows.append({"method": f"{method} (paper)", "profile": "published", "category": "overall", "videos": 48,
                     **{c: values.get(c) for c in COLUMNS}})
    return pd.DataFrame(rows, columns=["method", "profile", "category", "videos", *COLUMNS])


def write_report(table: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """CSV, Markdown (paper headers) and a PNG plot of the overall rows; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "benchmark.csv", "md": folder / "benchmark.md", "png": folder / "benchmark.png"}
    table.to_csv(paths["csv"], index=False)
    paths["md"].write_text(table.rename(columns=HEADERS).to_markdown(index=False, floatfmt=".3f"))
    overall = table[table["category"] == "overall"]
    figure, axes = plt.subplots(1, len(COLUMNS), figsize=(2.2 * len(COLUMNS), 3.2))
    for axis, column in zip(axes, COLUMNS):
        values = overall[column].astype(float)
        axis.barh(range(len(overall)), values.fillna(0.0), color=["#4878d0" if "(ours)" in m else "#b0b0b0"
                                                                   for m in overall["method"]])
        axis.set_title(HEADERS[column], fontsize=9)
        axis.set_yticks(range(len(overall)))
        axis.set_yticklabels(overall["method"] if column == COLUMNS[0] else [], fontsize=7)
        axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(paths["png"], dpi=80)
    plt.close(figure)
    return paths


def paper_rows_as_dicts(table2: Sequence | Mapping) -> dict[str, dict]:
    """Normalise the paper's Table 2 constant into {method: {metric: value}}."""
    if isinstance(table2, Mapping):
        return {k: dict(v) for k, v in table2.items()}
    return {row["method"]: {c: row.get(c) for c in COLUMNS} for row in table2}
