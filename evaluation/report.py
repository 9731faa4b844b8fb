"""The benchmark report: the paper's Table 2 layout for every method we ran, with spread, pairing and honesty.

Our rows come from per-partition metric records (`metrics.json`); the paper's published rows sit beside them,
labelled as what they are. Every row names the generation profile, the metric profile and the metric models,
so random-weight (`tiny`) numbers are never mistaken for real ones; those rows are marked in the table and the
plot. Means are over finite values only, and each row counts its NaN (e.g. PSNR without anchor overlap) and
+-inf (e.g. PSNR of a frame equal to its pseudo-GT) values instead of dropping or propagating them.

Spread: standard deviation and a bootstrap 95% interval of the mean per category (`BOOTSTRAP_SAMPLES`
resamples of the videos, percentile method, seeded), per-scene tables, and paired per-video differences of
every method against the reference method on the same scene x style.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.metrics import LOWER_IS_BETTER, METRICS
from vf3d.baselines.methods import METHODS

COLUMNS = METRICS
HEADERS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "psnr_d": "PSNR-D↑", "clip_a": "CLIP-A↑",
           "musiq": "MUSIQ↑", "clip_i": "CLIP-I↑", "subject_consistency": "SC↑", "background_consistency": "BC↑",
           "flicker_mae": "Flicker↓", "flicker_psnr": "Flicker PSNR↑"}
CATEGORIES = ("object-centric", "indoor", "outdoor", "transition")
PUBLISHED = "published, on the paper's unreleased scenes"
RANDOM_WEIGHTS = "[tiny: random weights]"
BOOTSTRAP_SAMPLES = 2000
STATISTICS = ("std", "ci_low", "ci_high", "n", "nan", "inf")
"""Per metric beside its mean: std, 95% interval, finite count, NaN count, +-inf count."""
GROUP = ["method", "generation_profile", "metric_profile", "aesthetic_head", "psnr_d_background"]
"""What makes two records comparable: the same method scored the same way on the same kind of models."""


def method_label(key: str) -> str:
    return METHODS[key].display if key in METHODS else key


def row_label(method: str, generation_profile: str, metric_profile: str) -> str:
    """A row's name in the table and the plot: method, role, profiles, and the random-weights mark."""
    if generation_profile == "published":
        return f"{method} ({PUBLISHED})"
    mark = f" {RANDOM_WEIGHTS}" if "tiny" in (generation_profile, metric_profile) else ""
    return f"{method_label(method)} · generated {generation_profile}, scored {metric_profile}{mark}"


def records_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """Metric records as a frame; records written before the profiles were split count as unknown."""
    frame = pd.DataFrame([dict(r) for r in records])
    if frame.empty:
        return frame
    defaults = {"generation_profile": "unknown", "metric_profile": frame.get("profile", "unknown"),
                "aesthetic_head": "improved_mlp (recorded as LAION)", "psnr_d_background": "exclude"}
    for column, default in defaults.items():
        if column not in frame:
            frame[column] = default
        frame[column] = frame[column].fillna(default if isinstance(default, str) else "unknown")
    for column in COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
    return frame


def summarise(values: Iterable[float], seed: int = 0) -> dict[str, float]:
    """Mean over the finite values, their std (ddof 1), bootstrap 95% interval of the mean, and counts."""
    values = np.asarray(list(values), dtype=np.float64)
    finite = values[np.isfinite(values)]
    out = {"mean": float(finite.mean()) if finite.size else math.nan,
           "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "n": int(finite.size),
           "nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum())}
    if finite.size > 1:
        rng = np.random.default_rng(seed)
        means = finite[rng.integers(0, finite.size, (BOOTSTRAP_SAMPLES, finite.size))].mean(axis=1)
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return out


def _metric_columns(part: pd.DataFrame) -> dict[str, float]:
    row = {}
    for column in COLUMNS:
        stats = summarise(part[column])
        row[column] = stats.pop("mean")
        row.update({f"{column}_{name}": value for name, value in stats.items()})
    return row


def _model_ids(part: pd.DataFrame) -> str:
    ids = {}
    for record_ids in part.get("model_ids", pd.Series(dtype=object)).dropna():
        for name, value in dict(record_ids).items():
            ids.setdefault(name, set()).add(str(value))
    return "; ".join(f"{name}: {' | '.join(sorted(values))}" for name, values in sorted(ids.items()))


def benchmark_table(records: Iterable[Mapping], paper_rows: Mapping[str, Mapping[str, float | None]]) -> pd.DataFrame:
    """One row per comparable group (`GROUP`) and category (plus 'overall'), then the paper's published rows."""
    frame = records_frame(records)
    rows = []
    if not frame.empty:
        for keys, group in frame.groupby(GROUP, sort=True):
            info = dict(zip(GROUP, keys))
            for category in (*CATEGORIES, "overall"):
                part = group if category == "overall" else group[group["category"] == category]
                if part.empty:
                    continue
                rows.append({"label": row_label(info["method"], info["generation_profile"], info["metric_profile"]),
                             **info, "random_weights": "tiny" in (info["generation_profile"], info["metric_profile"]),
                             "category": category, "videos": len(part), "metric_models": _model_ids(part),
                             **_metric_columns(part)})
    for method, values in paper_rows.items():
        rows.append({"label": row_label(method, "published", "published"), "method": method,
                     "generation_profile": "published", "metric_profile": "published", "aesthetic_head": "LAION",
                     "psnr_d_background": "not stated", "random_weights": False, "category": "overall",
                     "videos": 48, "metric_models": "as published",
                     **{c: (math.nan if values.get(c) is None else values[c]) for c in COLUMNS}})
    columns = ["label", *GROUP, "random_weights", "category", "videos", "metric_models"]
    columns += [c for column in COLUMNS for c in (column, *(f"{column}_{s}" for s in STATISTICS))]
    return pd.DataFrame(rows, columns=columns)


def per_scene_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per scene and comparable group: the mean over its styles of every metric (finite values), and counts."""
    frame = records_frame(records)
    if frame.empty:
        return pd.DataFrame(columns=["scene", "category", "label", "styles", *COLUMNS])
    rows = []
    for (scene, *keys), part in frame.groupby(["scene", *GROUP], sort=True):
        info = dict(zip(GROUP, keys))
        rows.append({"scene": scene, "category": part["category"].iloc[0],
                     "label": row_label(info["method"], info["generation_profile"], info["metric_profile"]),
                     "styles": len(part), **{c: summarise(part[c])["mean"] for c in COLUMNS},
                     "non_finite": sum(int((~np.isfinite(part[c])).sum()) for c in COLUMNS)})
    return pd.DataFrame(rows)


def paired_differences(records: Iterable[Mapping], reference: str = "ggi") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-video differences (method - reference) on the same scene x style and the same scoring, and their
    summary per method and metric: mean, bootstrap 95% interval, pairs (finite on both sides), and whether
    the difference favours the method (sign by `LOWER_IS_BETTER`). Empty when the reference was not run."""
    frame = records_frame(records)
    empty = pd.DataFrame(), pd.DataFrame(columns=["label", "metric", "mean_difference", "ci_low", "ci_high", "pairs"])
    if frame.empty or reference not in set(frame["method"]):
        return empty
    keys = ["scene", "style", *[g for g in GROUP if g != "method"]]
    base = frame[frame["method"] == reference].set_index(keys)[list(COLUMNS)]
    per_video, summary = [], []
    for (method, generation, metric), part in frame[frame["method"] != reference].groupby(
            ["method", "generation_profile", "metric_profile"], sort=True):
        joined = part.set_index(keys)[list(COLUMNS)].join(base, rsuffix="_reference", how="inner")
        if joined.empty:
            continue
        label = row_label(method, generation, metric)
        for index, row in joined.iterrows():
            per_video.append({"label": label, **dict(zip(keys, index)),
                              **{c: row[c] - row[f"{c}_reference"] for c in COLUMNS}})
        for column in COLUMNS:
            stats = summarise(joined[column] - joined[f"{column}_reference"])
            better = math.nan if math.isnan(stats["mean"]) else (stats["mean"] < 0) == (column in LOWER_IS_BETTER)
            summary.append({"label": label, "metric": column, "mean_difference": stats["mean"],
                            "ci_low": stats["ci_low"], "ci_high": stats["ci_high"], "pairs": stats["n"],
                            "not_comparable": stats["nan"] + stats["inf"], "favours_method": better})
    return pd.DataFrame(per_video), pd.DataFrame(summary)


def _cell(row: Mapping, column: str) -> str:
    mean, std = row[column], row.get(f"{column}_std", math.nan)
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")


def _non_finite(row: Mapping) -> str:
    parts = [f"{HEADERS[c]} {int(row[f'{c}_nan'])}×NaN" for c in COLUMNS if row.get(f"{c}_nan", 0) > 0]
    parts += [f"{HEADERS[c]} {int(row[f'{c}_inf'])}×inf" for c in COLUMNS if row.get(f"{c}_inf", 0) > 0]
    return ", ".join(parts) or "none"


def _markdown(table: pd.DataFrame, notes: list[str]) -> str:
    overall = table[table["category"] == "overall"]
    main = pd.DataFrame([{"row": r["label"], "videos": r["videos"], **{HEADERS[c]: _cell(r, c) for c in COLUMNS},
                          "non-finite (left out of the mean)": _non_finite(r) if r["generation_profile"] != "published"
                          else "-"} for _, r in overall.iterrows()])
    ours = table[table["generation_profile"] != "published"]
    spread = pd.DataFrame([{"row": r["label"], "category": r["category"], "videos": r["videos"],
                            **{HEADERS[c]: "n/a" if pd.isna(r[f"{c}_ci_low"]) else
                               f"[{r[f'{c}_ci_low']:.3f}, {r[f'{c}_ci_high']:.3f}]" for c in COLUMNS}}
                           for _, r in ours.iterrows()])
    models = pd.DataFrame([{"row": r["label"], "metric models": r["metric_models"]}
                           for _, r in ours[ours["category"] == "overall"].iterrows()])
    parts = ["# Benchmark", "", *notes, "", "## Overall: mean ± std over videos", "",
             main.to_markdown(index=False) if not main.empty else "(no rows)", "",
             "## Per category: bootstrap 95% interval of the mean", "",
             spread.to_markdown(index=False) if not spread.empty else "(no videos scored yet)", "",
             "## Metric models per row", "", models.to_markdown(index=False) if not models.empty else "(none)"]
    return "\n".join(parts) + "\n"


def report_notes(table: pd.DataFrame) -> list[str]:
    """What the numbers are: estimator, equalisation, aesthetic head, flicker, non-finite policy, random rows."""
    ours = table[table["generation_profile"] != "published"]
    heads = ", ".join(sorted(set(ours["aesthetic_head"]))) or "none yet"
    backgrounds = ", ".join(sorted(set(ours["psnr_d_background"]))) or "none yet"
    notes = [
        f"- Rows marked '{PUBLISHED}' are the paper's Table 2 as printed (its 48 videos; the test set is not "
        "released), not measured here; '-' in the paper is n/a.",
        "- PSNR-D: monocular depth (the row's `depth` metric model, Intel/dpt-hybrid-midas for real weights) vs the "
        "rendered depth, both as inverse depth and rank-histogram-equalised per frame; background pixels: "
        f"{backgrounds} ('exclude' = not scored, the paper's reading; 'farthest' = scored as the farthest depth).",
        f"- CLIP-A aesthetic head: {heads} (laion_linear = LAION-AI/aesthetic-predictor, the paper's citation).",
        "- Flicker: mean absolute difference (0-255) between each frame and the next warped back along the exact "
        "mesh flows, on valid unoccluded pixels; 0 for an exact re-projection (not in the paper).",
        "- Means are over finite values; NaN and ±inf are counted per row instead (PSNR is +inf where a frame "
        "equals its pseudo-GT, NaN where no anchor overlaps it).",
    ]
    if ours["random_weights"].any():
        notes.append(f"- Rows marked {RANDOM_WEIGHTS} come from the tiny profile's random networks: they prove "
                     "the pipeline ran, their values mean nothing.")
    return notes


def plot(table: pd.DataFrame, path: Path) -> None:
    """The overall rows, one small panel per metric in a grid, rows numbered with a key above; tiny rows
    hatched, published rows grey, missing values written 'n/a' and all-infinite ones 'k×inf' (never a zero bar),
    95% intervals as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = table[table["category"] == "overall"].reset_index(drop=True)
    n = max(len(overall), 1)
    columns = 4
    rows = math.ceil(len(COLUMNS) / columns)
    key_height = 0.22 * n + 0.3
    panel_height = 0.28 * n + 0.9
    figure = plt.figure(figsize=(10, key_height + rows * panel_height))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[key_height] + [panel_height] * rows)
    key = figure.add_subplot(grid[0, :])
    key.axis("off")
    for i, label in enumerate(overall["label"]):
        key.text(0, 1 - (i + 0.5) / n, f"#{i + 1}  {label}", fontsize=7, va="center", transform=key.transAxes)
    colours = ["#b0b0b0" if g == "published" else "#4878d0" for g in overall["generation_profile"]]
    hatches = ["//" if random else "" for random in overall["random_weights"]]
    for index, column in enumerate(COLUMNS):
        axis = figure.add_subplot(grid[1 + index // columns, index % columns])
        values = overall[column].astype(float)
        for i, value in enumerate(values):
            if not np.isfinite(value):
                infinite = overall.get(f"{column}_inf", pd.Series([0] * n))[i]
                axis.text(0, i, f"{int(infinite)}×inf" if infinite > 0 else "n/a", fontsize=6, va="center")
                continue
            low, high = overall.get(f"{column}_ci_low", pd.Series([np.nan] * n))[i], \
                overall.get(f"{column}_ci_high", pd.Series([np.nan] * n))[i]
            error = None if pd.isna(low) else [[value - low], [high - value]]
            axis.barh(i, value, color=colours[i], hatch=hatches[i], edgecolor="black", linewidth=0.3,
                      xerr=error, error_kw={"elinewidth": 0.6})
        axis.set_title(HEADERS[column], fontsize=8)
        axis.set_yticks(range(n))
        axis.set_yticklabels([f"#{i + 1}" for i in range(n)], fontsize=6)
        axis.set_ylim(n - 0.5, -0.5)
        axis.tick_params(axis="x", labelsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write_report(records: Iterable[Mapping], paper_rows: Mapping[str, Mapping[str, float | None]], folder: Path,
                 reference: str = "ggi") -> dict[str, Path]:
    """Every table as CSV, `benchmark.md` (notes, overall, intervals, paired differences, per scene, models) and
    `benchmark.png`; returns the paths."""
    records = list(records)
    table = benchmark_table(records, paper_rows)
    scenes = per_scene_table(records)
    per_video, paired = paired_differences(records, reference)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.csv" for name in ("benchmark", "per_scene", "paired_per_video", "paired")}
    for name, frame in (("benchmark", table), ("per_scene", scenes), ("paired_per_video", per_video),
                        ("paired", paired)):
        frame.to_csv(paths[name], index=False)
    text = _markdown(table, report_notes(table))
    text += f"\n## Paired differences against {method_label(reference)} (same scene x style)\n\n"
    text += (paired.assign(metric=paired["metric"].map(HEADERS)).to_markdown(index=False, floatfmt=".3f")
             if not paired.empty else "(no pairs yet)") + "\n"
    text += "\n## Per scene (mean over its styles)\n\n"
    text += (scenes.rename(columns=HEADERS).to_markdown(index=False, floatfmt=".3f") if not scenes.empty
             else "(no videos scored yet)") + "\n"
    paths["md"] = folder / "benchmark.md"
    paths["md"].write_text(text)
    paths["png"] = folder / "benchmark.png"
    plot(table, paths["png"])
    return paths


def paper_rows_as_dicts(table2: Mapping) -> dict[str, dict]:
    """The paper's Table 2 constant as {method: {metric: value}}."""
    return {k: dict(v) for k, v in table2.items()}
