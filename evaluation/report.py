"""The benchmark report: the paper's Table 2 layout for every method we ran, with spread, pairing and honesty.

Our rows come from per-partition metric records (`metrics.json`); the paper's published rows sit beside them,
labelled as what they are, and the paper's Table 3 (GGI's structure condition) beside our ablation rows. Every
row names the generation profile, the metric profile and the metric models, so random-weight (`tiny`) numbers
are never mistaken for real ones; those rows are marked in the table and the plot. Records scored differently
(another aesthetic head, another PSNR-D background rule) are never pooled: each such setting is its own row,
named in its label, and paired only with the reference scored the same way. Means are over finite values only,
and each row counts its NaN (e.g. PSNR without anchor overlap) and +-inf (e.g. PSNR of a frame equal to its
pseudo-GT) values instead of dropping or propagating them.

Records are current when they carry `evaluation.metrics.METRICS_CODE_VERSION` and belong to a scene x style of
the catalog: `current_records` leaves the others out and counts them, and the report's notes say how many.

Spread: the standard deviation over videos, and a 95% interval of the mean by a clustered bootstrap: the
benchmark's 48 videos are 16 scenes x 3 styles, and videos of one scene share its geometry and camera path, so
they are not independent. Each of `BOOTSTRAP_SAMPLES` resamples (seeded) draws scenes with replacement and
keeps all of a drawn scene's videos; the interval is the 2.5-97.5 percentile of the resampled means (of all
their finite values). A group with fewer than `MIN_SCENES_FOR_INTERVAL` scenes (the paper's indoor and
transition categories have 2) gets a note instead of an interval. Paired per-video differences of every
method against the reference method on the same scene x style are summarised the same way; a mean
difference of exactly 0 favours neither.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.metrics import LOWER_IS_BETTER, METRICS, PAPER_TABLE3, TABLE3_METHODS, TABLE3_METRICS
from evaluation.quality import DEFAULT_AESTHETIC_HEAD
from vf3d.baselines.methods import METHODS

COLUMNS = METRICS
HEADERS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "psnr_d": "PSNR-D↑", "clip_a": "CLIP-A↑",
           "musiq": "MUSIQ↑", "clip_i": "CLIP-I↑", "subject_consistency": "SC↑", "background_consistency": "BC↑",
           "flicker_mae": "Flicker↓", "flicker_psnr": "Flicker PSNR↑"}
CATEGORIES = ("object-centric", "indoor", "outdoor", "transition")
PUBLISHED = "published, on the paper's unreleased scenes"
RANDOM_WEIGHTS = "[tiny: random weights]"
BOOTSTRAP_SAMPLES = 2000
MIN_SCENES_FOR_INTERVAL = 3
"""Fewer scenes than this: no interval (a resample of 2 scenes has 3 distinct outcomes, no 95% claim)."""
STATISTICS = ("std", "ci_low", "ci_high", "n", "nan", "inf", "scenes")
"""Per metric beside its mean: std, 95% interval, finite count, NaN count, +-inf count, scenes with a finite value."""
GROUP = ["method", "generation_profile", "metric_profile", "aesthetic_head", "psnr_d_background"]
"""What makes two records comparable: the same method scored the same way on the same kind of models."""
DEFAULT_SCORING = {"aesthetic_head": DEFAULT_AESTHETIC_HEAD, "psnr_d_background": "exclude"}
"""The scoring settings a row label leaves unsaid; any other is named in the label."""


def method_label(key: str) -> str:
    return METHODS[key].display if key in METHODS else key


def row_label(method: str, generation_profile: str, metric_profile: str,
              aesthetic_head: str = DEFAULT_SCORING["aesthetic_head"],
              psnr_d_background: str = DEFAULT_SCORING["psnr_d_background"]) -> str:
    """A row's name in the table and the plot: method, role, profiles, scoring settings other than the defaults,
    and the random-weights mark."""
    if generation_profile == "published":
        return f"{method} ({PUBLISHED})"
    mark = f" {RANDOM_WEIGHTS}" if "tiny" in (generation_profile, metric_profile) else ""
    scoring = f" · CLIP-A head {aesthetic_head}" if aesthetic_head != DEFAULT_SCORING["aesthetic_head"] else ""
    if psnr_d_background != DEFAULT_SCORING["psnr_d_background"]:
        scoring += f" · PSNR-D background {psnr_d_background}"
    return f"{method_label(method)} · generated {generation_profile}, scored {metric_profile}{scoring}{mark}"


def _group_label(info: Mapping[str, str]) -> str:
    return row_label(*(info[key] for key in GROUP))


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


def current_records(records: Iterable[Mapping], code_version: str | None = None,
                    partitions: Collection[tuple[str, str]] | None = None) -> tuple[list[Mapping], dict[str, int]]:
    """The records to report and how many were left out: "orphan" = its (scene, style) is not in `partitions`
    (the catalog no longer has it), else "stale" = its `metrics_code_version` is not `code_version` (or missing:
    written before records carried it). None skips that check."""
    kept, left_out = [], {"orphan": 0, "stale": 0}
    for record in records:
        if partitions is not None and (record.get("scene"), record.get("style")) not in partitions:
            left_out["orphan"] += 1
        elif code_version is not None and record.get("metrics_code_version") != code_version:
            left_out["stale"] += 1
        else:
            kept.append(record)
    return kept, left_out


def summarise(values: Iterable[float], clusters: Iterable | None = None, seed: int = 0) -> dict[str, float]:
    """Mean over the finite values, their std (ddof 1), a clustered-bootstrap 95% interval of the mean, counts.

    Args:
        values: one value per video.
        clusters: the scene of each value; a resample draws scenes with replacement and keeps all of a drawn
            scene's values (module docstring). None: every value is its own cluster (independent values).
        seed: of the resampling.

    Returns:
        mean, std, ci_low, ci_high (NaN with fewer than `MIN_SCENES_FOR_INTERVAL` clusters holding a finite
        value), n (finite values), nan, inf (their counts) and scenes (clusters with a finite value).
    """
    values = np.asarray(list(values), dtype=np.float64)
    clusters = np.arange(values.size) if clusters is None else np.asarray(list(clusters))
    if clusters.shape != values.shape:
        raise ValueError(f"clusters: expected one per value ({values.size}), got {clusters.size}")
    finite = np.isfinite(values)
    labels, inverse = np.unique(clusters[finite], return_inverse=True)
    out = {"mean": float(values[finite].mean()) if finite.any() else math.nan,
           "std": float(values[finite].std(ddof=1)) if finite.sum() > 1 else math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "n": int(finite.sum()),
           "nan": int(np.isnan(values).sum()), "inf": int(np.isinf(values).sum()), "scenes": int(labels.size)}
    if labels.size >= MIN_SCENES_FOR_INTERVAL:
        sums = np.bincount(inverse.ravel(), weights=values[finite], minlength=labels.size)
        counts = np.bincount(inverse.ravel(), minlength=labels.size)
        picks = np.random.default_rng(seed).integers(0, labels.size, (BOOTSTRAP_SAMPLES, labels.size))
        means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)  # every cluster holds a finite value
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return out


def _metric_columns(part: pd.DataFrame) -> dict[str, float]:
    row = {}
    for column in COLUMNS:
        stats = summarise(part[column], part["scene"])
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
                rows.append({"label": _group_label(info), **info,
                             "random_weights": "tiny" in (info["generation_profile"], info["metric_profile"]),
                             "category": category, "videos": len(part), "scenes": part["scene"].nunique(),
                             "metric_models": _model_ids(part), **_metric_columns(part)})
    for method, values in paper_rows.items():
        rows.append({"label": row_label(method, "published", "published"), "method": method,
                     "generation_profile": "published", "metric_profile": "published", "aesthetic_head": "LAION",
                     "psnr_d_background": "not stated", "random_weights": False, "category": "overall",
                     "videos": 48, "scenes": 16, "metric_models": "as published",
                     **{c: (math.nan if values.get(c) is None else values[c]) for c in COLUMNS}})
    columns = ["label", *GROUP, "random_weights", "category", "videos", "scenes", "metric_models"]
    columns += [c for column in COLUMNS for c in (column, *(f"{column}_{s}" for s in STATISTICS))]
    return pd.DataFrame(rows, columns=columns)


def ablation_table(table: pd.DataFrame, paper_table3: Mapping[str, Mapping[str, float]] = PAPER_TABLE3
                   ) -> pd.DataFrame:
    """The paper's Table 3 rows, each followed by our overall rows of the method with that structure condition
    (`TABLE3_METHODS`; one per comparable group), on Table 3's columns."""
    ours = table[(table["generation_profile"] != "published") & (table["category"] == "overall")]
    rows = []
    for condition, values in paper_table3.items():
        rows.append({"condition": condition, "label": f"Table 3 '{condition}' ({PUBLISHED})", "videos": 48,
                     **{c: values[c] for c in TABLE3_METRICS}})
        for _, row in ours[ours["method"] == TABLE3_METHODS[condition]].iterrows():
            rows.append({"condition": condition, "label": row["label"], "videos": row["videos"],
                         **{c: row[c] for c in TABLE3_METRICS},
                         **{f"{c}_std": row[f"{c}_std"] for c in TABLE3_METRICS}})
    return pd.DataFrame(rows, columns=["condition", "label", "videos", *TABLE3_METRICS,
                                       *(f"{c}_std" for c in TABLE3_METRICS)])


def per_scene_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per scene and comparable group: the mean over its styles of every metric (finite values), and counts."""
    frame = records_frame(records)
    if frame.empty:
        return pd.DataFrame(columns=["scene", "category", "label", "method", "styles", *COLUMNS])
    rows = []
    for (scene, *keys), part in frame.groupby(["scene", *GROUP], sort=True):
        info = dict(zip(GROUP, keys))
        rows.append({"scene": scene, "category": part["category"].iloc[0], "label": _group_label(info),
                     "method": info["method"],
                     "styles": len(part), **{c: summarise(part[c])["mean"] for c in COLUMNS},
                     "non_finite": sum(int((~np.isfinite(part[c])).sum()) for c in COLUMNS)})
    return pd.DataFrame(rows)


def favours(mean_difference: float, metric: str) -> str:
    """Whom a mean paired difference (method - reference) of `metric` favours: 'method', 'reference', 'neither'
    (exactly 0) or 'n/a' (no finite pair)."""
    if math.isnan(mean_difference):
        return "n/a"
    if mean_difference == 0:
        return "neither"
    return "method" if (mean_difference < 0) == (metric in LOWER_IS_BETTER) else "reference"


def paired_differences(records: Iterable[Mapping], reference: str = "ggi") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-video differences (method - reference) on the same scene x style and the same scoring, and their
    summary per comparable group and metric: mean, clustered-bootstrap 95% interval over scenes, pairs (finite
    on both sides), scenes, and whom the difference favours (`favours`). Empty when the reference was not run."""
    frame = records_frame(records)
    empty = pd.DataFrame(), pd.DataFrame(columns=["label", "metric", "mean_difference", "ci_low", "ci_high", "pairs",
                                                  "scenes", "not_comparable", "favours"])
    if frame.empty or reference not in set(frame["method"]):
        return empty
    keys = ["scene", "style", *[g for g in GROUP if g != "method"]]
    base = frame[frame["method"] == reference].set_index(keys)[list(COLUMNS)]
    per_video, summary = [], []
    for group_keys, part in frame[frame["method"] != reference].groupby(GROUP, sort=True):
        joined = part.set_index(keys)[list(COLUMNS)].join(base, rsuffix="_reference", how="inner")
        if joined.empty:
            continue
        label = _group_label(dict(zip(GROUP, group_keys)))
        scenes = joined.index.get_level_values("scene")
        for index, row in joined.iterrows():
            per_video.append({"label": label, **dict(zip(keys, index)),
                              **{c: row[c] - row[f"{c}_reference"] for c in COLUMNS}})
        for column in COLUMNS:
            stats = summarise(joined[column] - joined[f"{column}_reference"], scenes)
            summary.append({"label": label, "metric": column, "mean_difference": stats["mean"],
                            "ci_low": stats["ci_low"], "ci_high": stats["ci_high"], "pairs": stats["n"],
                            "scenes": stats["scenes"], "not_comparable": stats["nan"] + stats["inf"],
                            "favours": favours(stats["mean"], column)})
    return pd.DataFrame(per_video), pd.DataFrame(summary, columns=empty[1].columns)


def mean_and_std(row: Mapping, column: str) -> str:
    """"mean ± std" of a column (std from `<column>_std`), "n/a" without a mean."""
    mean, std = row[column], row.get(f"{column}_std", math.nan)
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")


def interval_text(row: Mapping, prefix: str = "", low: str = "ci_low", high: str = "ci_high",
                  scenes: str = "scenes") -> str:
    """'[low, high]', or why there is none: too few scenes, or no finite value."""
    if not pd.isna(row[f"{prefix}{low}"]):
        return f"[{row[f'{prefix}{low}']:.3f}, {row[f'{prefix}{high}']:.3f}]"
    count = int(row[f"{prefix}{scenes}"])
    return "n/a" if count == 0 else f"{count} scene{'s' if count > 1 else ''}: too few for an interval"


def _non_finite(row: Mapping) -> str:
    parts = [f"{HEADERS[c]} {int(row[f'{c}_nan'])}×NaN" for c in COLUMNS if row.get(f"{c}_nan", 0) > 0]
    parts += [f"{HEADERS[c]} {int(row[f'{c}_inf'])}×inf" for c in COLUMNS if row.get(f"{c}_inf", 0) > 0]
    return ", ".join(parts) or "none"


def _markdown(table: pd.DataFrame, notes: list[str]) -> str:
    overall = table[table["category"] == "overall"]
    main = pd.DataFrame([{"row": r["label"], "videos": r["videos"], **{HEADERS[c]: mean_and_std(r, c) for c in COLUMNS},
                          "non-finite (left out of the mean)": _non_finite(r) if r["generation_profile"] != "published"
                          else "-"} for _, r in overall.iterrows()])
    ours = table[table["generation_profile"] != "published"]
    spread = pd.DataFrame([{"row": r["label"], "category": r["category"], "videos": r["videos"], "scenes": r["scenes"],
                            **{HEADERS[c]: interval_text(r, f"{c}_") for c in COLUMNS}} for _, r in ours.iterrows()])
    ablation = ablation_table(table)
    ablation_md = pd.DataFrame([{"Table 3 condition": r["condition"], "row": r["label"], "videos": r["videos"],
                                 **{HEADERS[c]: mean_and_std(r, c) for c in TABLE3_METRICS}}
                                for _, r in ablation.iterrows()])
    models = pd.DataFrame([{"row": r["label"], "metric models": r["metric_models"]}
                           for _, r in ours[ours["category"] == "overall"].iterrows()])
    parts = ["# Benchmark", "", *notes, "", "## Overall: mean ± std over videos", "",
             main.to_markdown(index=False) if not main.empty else "(no rows)", "",
             "## Per category: 95% interval of the mean, scenes resampled (clustered bootstrap)", "",
             spread.to_markdown(index=False) if not spread.empty else "(no videos scored yet)", "",
             "## Structure ablation: the paper's Table 3 beside our rows", "",
             ablation_md.to_markdown(index=False), "",
             "## Metric models per row", "", models.to_markdown(index=False) if not models.empty else "(none)"]
    return "\n".join(parts) + "\n"


def report_notes(table: pd.DataFrame, left_out: Mapping[str, int] | None = None, code_version: str | None = None
                 ) -> list[str]:
    """What the numbers are: which records, estimator, clustering, equalisation, aesthetic head, flicker,
    non-finite policy, random rows."""
    ours = table[table["generation_profile"] != "published"]
    heads = ", ".join(sorted(set(ours["aesthetic_head"]))) or "none yet"
    backgrounds = ", ".join(sorted(set(ours["psnr_d_background"]))) or "none yet"
    left_out = left_out or {}
    version = f"metrics code version {code_version}" if code_version is not None else "any metrics code version"
    notes = [
        f"- Records: scored by {version}, of a scene x style in the catalog; left out: {left_out.get('stale', 0)} "
        f"stale (another or no code version), {left_out.get('orphan', 0)} of no current partition.",
        f"- Rows marked '{PUBLISHED}': the paper's Tables 2 and 3 as printed (its 48 videos, not released), not "
        "measured here; '-' in the paper is n/a.",
        f"- Intervals: 95%, {BOOTSTRAP_SAMPLES} seeded clustered bootstrap resamples: scenes drawn with "
        "replacement, each with all its videos (its styles share geometry and camera path); fewer than "
        f"{MIN_SCENES_FOR_INTERVAL} scenes: a note, no interval. Paired differences alike; an exactly-zero mean "
        "difference favours neither method. ± is the std over videos.",
        "- Rows scored with another CLIP-A head or PSNR-D background are never pooled; the label names any but "
        "laion_linear and exclude.",
        "- PSNR-D: monocular vs rendered depth, both inverse and rank-equalised per frame; background: "
        f"{backgrounds} ('exclude' = not scored, our reading: the paper does not say; 'farthest' = scored as the "
        "farthest depth).",
        f"- CLIP-A head: {heads} (laion_linear = LAION-AI/aesthetic-predictor, the paper's citation).",
        "- Flicker (not in the paper): frame i sampled half-way back along the exact mesh flow, frame i+1 at the "
        "matching point (same resampling blur on both), the difference low-passed (Gaussian, sigma 2 px) on valid "
        "pixels, mean |.| in levels: exact ~0.1 at any speed, blotchy ±3 ~1. Blind to flat or blurred output "
        "(grey: 0): read it beside PSNR-D and MUSIQ.",
        "- Means over finite values; NaN and ±inf counted per row (PSNR +inf where a frame equals its pseudo-GT, "
        "NaN where no anchor overlaps it).",
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
                 reference: str = "ggi", left_out: Mapping[str, int] | None = None, code_version: str | None = None
                 ) -> dict[str, Path]:
    """Every table as CSV, `benchmark.md` (notes, overall, intervals, ablation, paired differences, per scene,
    models) and `benchmark.png`; returns the paths. `records`: the current ones, `left_out` and `code_version`
    as `current_records` gave and took them (for the notes)."""
    records = list(records)
    table = benchmark_table(records, paper_rows)
    scenes = per_scene_table(records)
    per_video, paired = paired_differences(records, reference)
    ablation = ablation_table(table)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.csv" for name in ("benchmark", "per_scene", "paired_per_video", "paired",
                                                       "ablation")}
    for name, frame in (("benchmark", table), ("per_scene", scenes), ("paired_per_video", per_video),
                        ("paired", paired), ("ablation", ablation)):
        frame.to_csv(paths[name], index=False)
    text = _markdown(table, report_notes(table, left_out, code_version))
    text += f"\n## Paired differences against {method_label(reference)} (same scene x style, same scoring)\n\n"
    if paired.empty:
        text += "(no pairs yet)\n"
    else:
        shown = paired.assign(metric=paired["metric"].map(HEADERS),
                              interval=[interval_text(r) for _, r in paired.iterrows()])
        text += shown[["label", "metric", "mean_difference", "interval", "pairs", "scenes", "not_comparable",
                       "favours"]].to_markdown(index=False, floatfmt=".3f") + "\n"
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
