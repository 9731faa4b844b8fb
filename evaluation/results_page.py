"""The results page: every method's video of a shot side by side, with the benchmark's numbers beside them.

One static HTML file (`index.html`, rendered by Jinja2 from `templates/results_page.html.j2`, its CSS and JS
inline) that needs no server: it links to the videos, anchors and edge maps where the pipeline wrote them, by
paths relative to the page, and copies nothing. It opens from disk, from a zip of the artifacts folder, and
through `vf3d ui`'s read-only artifact server alike. It shows the report's overall table (sortable), one row per
scene x style with the methods' videos playing in sync, the anchors and edge maps beside them and each video's
numbers under it, the report's plot, a per-scene drill-down, and a filter by scene, style and method.

The numbers are the report's own (`evaluation.report`): the overall and per-scene tables as the report computed
them (passed in, or computed with its functions), and each video's metric record as written.
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from PIL import Image

from evaluation.metrics import LOWER_IS_BETTER
# the Markdown's own cell and interval texts (mean_and_std, interval_text), not re-made here
from evaluation.report import (COLUMNS, GROUP, HEADERS, benchmark_table, interval_text, mean_and_std, method_label,
                               per_scene_table, records_frame, report_notes, row_label)
from vf3d.baselines.methods import METHODS
from vf3d.common.atomic import write_text_atomic

PAGE = "index.html"
TEMPLATE = "results_page.html.j2"
PLOT = "benchmark.png"
_INDENT = re.compile(r"\n[ \t]+")
PUBLISHED_FILTER = "published"
"""The method filter's value of the paper's printed rows (they are not a method we ran)."""

_environment = jinja2.Environment(loader=jinja2.PackageLoader("evaluation", "templates"),
                                  autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                                  undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class ArtifactLayout:
    """Where the pipeline writes a shot's media under the artifacts folder (the Dagster assets' folders):
    `<root>/<video asset>/<scene>__<style>/video.mp4` (+ `video.json`), `<root>/anchors/<scene>__<style>/anchors/
    <frame>.png`, `<root>/guidance/<scene>/edges/<frame>.png`."""

    root: Path
    video_folder: Callable[[str], str]
    """A method's video asset name (`vf3d_assets.assets.ggi.video_asset_name`)."""

    @staticmethod
    def partition(scene: str, style: str) -> str:
        return f"{scene}__{style}"

    def video(self, method: str, scene: str, style: str) -> Path:
        return self.root / self.video_folder(method) / self.partition(scene, style) / "video.mp4"

    def anchors(self, scene: str, style: str) -> list[Path]:
        return sorted((self.root / "anchors" / self.partition(scene, style) / "anchors").glob("*.png"))

    def edges(self, scene: str) -> list[Path]:
        return sorted((self.root / "guidance" / scene / "edges").glob("*.png"))


def _href(target: Path, page_dir: Path) -> str:
    """A link from the page to `target`: relative (so the page works from disk, a zip or a server), URL-quoted."""
    return urllib.parse.quote(Path(os.path.relpath(target, page_dir)).as_posix())


def _number(value: object) -> str:
    value = float(value) if value is not None else math.nan
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return f"{value:.3f}"


def _sort_key(value: object) -> str:
    """`data-sort` of a numeric cell: JavaScript's parseFloat reads it ('Infinity' too); '' = missing, sorted last."""
    value = float(value) if value is not None else math.nan
    return "" if math.isnan(value) else f"{value:.7g}".replace("inf", "Infinity")


def _float(row: Mapping, key: str) -> float:
    value = row.get(key, math.nan)
    return math.nan if value is None or pd.isna(value) else float(value)


def _overall_cell(row: Mapping, column: str, published: bool) -> dict:
    """mean ± std and the 95% interval (or why there is none) as the Markdown report writes them, and the
    non-finite values the mean left out (its 'non-finite' column)."""
    nan, inf = _float(row, f"{column}_nan"), _float(row, f"{column}_inf")
    left_out = [f"{int(count)}×{name}" for count, name in ((nan, "NaN"), (inf, "inf")) if count > 0]
    interval = "" if published else interval_text(row, f"{column}_")
    return {"mean": mean_and_std(row, column), "interval": interval,
            # in every cell of a small run: the short form, the report's words on hover
            "interval_short": interval if interval.startswith("[") or interval == "n/a" else "no interval",
            "left_out": ", ".join(left_out), "sort": _sort_key(_float(row, column))}


def _overall_rows(table: pd.DataFrame) -> list[dict]:
    rows = []
    for _, row in table[table["category"] == "overall"].iterrows():
        published = row["generation_profile"] == "published"
        random = str(row.get("random_weights", False)) == "True"  # a bool, or its text read back from the CSV
        rows.append({"label": row["label"], "method": PUBLISHED_FILTER if published else row["method"],
                     "published": published, "random": random, "videos": int(row["videos"]),
                     "cells": [_overall_cell(row, c, published) for c in COLUMNS]})
    return rows


def _best(records: Sequence[Mapping]) -> dict[str, float]:
    """Per metric, the best finite value among the generating methods of one shot (the reference is the
    pseudo-GT itself, so it is never 'best')."""
    best = {}
    for column in COLUMNS:
        values = [_float(r, column) for r in records if METHODS.get(r["method"]) is None
                  or METHODS[r["method"]].role != "reference"]
        values = [v for v in values if math.isfinite(v)]
        if values:
            best[column] = min(values) if column in LOWER_IS_BETTER else max(values)
    return best


def _method_order(key: str) -> tuple[int, str]:
    order = list(METHODS)
    return (order.index(key) if key in order else len(order), key)


def _partitions(records: Sequence[Mapping], layout: ArtifactLayout, page_dir: Path) -> list[dict]:
    by_shot: dict[tuple[str, str], list[Mapping]] = {}
    for record in records:
        by_shot.setdefault((record["scene"], record["style"]), []).append(record)
    partitions = []
    for (scene, style), shot in sorted(by_shot.items()):
        shot = sorted(shot, key=lambda r: _method_order(r["method"]))
        anchors, edges = layout.anchors(scene, style), layout.edges(scene)
        size = _size(next(iter((*anchors, *edges[:1])), None))
        best = _best(shot)
        videos = []
        for record in shot:
            video = layout.video(record["method"], scene, style)
            numbers = [{"header": HEADERS[c], "value": _number(_float(record, c)),
                        "best": best.get(c) == _float(record, c)} for c in COLUMNS]
            videos.append({"method": record["method"], "label": method_label(record["method"]),
                           "profiles": f"generated {record.get('generation_profile', 'unknown')}, scored "
                                       f"{record.get('metric_profile', record.get('profile', 'unknown'))}",
                           "src": _href(video, page_dir) if video.is_file() else None, "numbers": numbers})
        edge_by_frame = {p.stem: p for p in edges}
        partitions.append({
            "id": f"shot-{layout.partition(scene, style)}", "scene": scene, "style": style,
            "category": shot[0].get("category", ""), "fps": _fps(layout, shot, scene, style),
            "aspect": f"{size[0]} / {size[1]}", "videos": videos,
            "anchors": [{"frame": int(p.stem), "src": _href(p, page_dir),
                         "edge": _href(edge_by_frame[p.stem], page_dir) if p.stem in edge_by_frame else None}
                        for p in anchors],
            # the edge map of the frame on screen: the page builds its file name from the frame number
            "edges": {"folder": _href(edges[0].parent, page_dir) + "/", "count": len(edges),
                      "digits": len(edges[0].stem), "first": _href(edges[0], page_dir)} if edges else None})
    return partitions


def _size(picture: Path | None) -> tuple[int, int]:
    """A shot's frame size (width, height) from one of its pictures' headers (the pixels are not read)."""
    if picture is None:
        return 4, 3
    with Image.open(picture) as image:
        return image.size


def _fps(layout: ArtifactLayout, shot: Sequence[Mapping], scene: str, style: str) -> float:
    """The shot's frame rate, from the first method video's `video.json` (8 fps, the assets' default, if none)."""
    for record in shot:
        info = layout.video(record["method"], scene, style).with_name("video.json")
        if info.is_file():
            return float(json.loads(info.read_text()).get("fps", 8.0))
    return 8.0


def _scene_tables(scenes: pd.DataFrame, records: Sequence[Mapping], partitions: Sequence[Mapping]) -> list[dict]:
    """The report's per-scene table, grouped by scene, each row tagged with its method for the filter."""
    frame = records_frame(records)  # a label's method, for tables written before they carried it
    methods = {row_label(*(r[key] for key in GROUP)): r["method"] for _, r in frame.iterrows()} \
        if not frame.empty else {}
    out = []
    for scene, part in scenes.groupby("scene", sort=True) if not scenes.empty else ():
        out.append({"scene": scene, "category": part["category"].iloc[0],
                    "shots": [p for p in partitions if p["scene"] == scene],
                    "rows": [{"label": r["label"], "method": r.get("method", methods.get(r["label"], "")),
                              "styles": int(r["styles"]),
                              "cells": [{"text": _number(r[c]), "sort": _sort_key(r[c])} for c in COLUMNS]}
                             for _, r in part.iterrows()]})
    return out


def render_results_page(records: Iterable[Mapping], layout: ArtifactLayout, page_dir: Path, *,
                        table: pd.DataFrame | None = None, scenes: pd.DataFrame | None = None,
                        plot: str | None = None, title: str = "Benchmark results", summary: bool = True,
                        left_out: Mapping[str, int] | None = None, code_version: str | None = None) -> str:
    """The page's HTML for the metric `records` (the report's: `current_records`' choice), linking to media
    under `layout.root` from `page_dir` (the folder the page will finally live in). `table`/`scenes`: the
    report's `benchmark_table`/`per_scene_table` (computed here from the records when not given); `plot`: the
    plot's link from the page; `left_out`, `code_version`: as given to `write_report`, for the same notes.
    `summary=False`: the videos and their numbers only (a designer's page for one shot)."""
    records = [dict(r) for r in records]
    if summary:
        table = benchmark_table(records, {}) if table is None else table
        scenes = per_scene_table(records) if scenes is None else scenes
    partitions = _partitions(records, layout, page_dir)
    methods = sorted({r["method"] for r in records}, key=_method_order)
    overall = _overall_rows(table) if summary else []
    filters = {"scene": sorted({r["scene"] for r in records}), "style": sorted({r["style"] for r in records}),
               "method": [(m, method_label(m)) for m in methods]
               + ([(PUBLISHED_FILTER, "the paper's printed rows")] if any(r["published"] for r in overall) else [])}
    html = _environment.get_template(TEMPLATE).render(
        title=title, summary=summary, overall=overall,
        notes=[n.removeprefix("- ") for n in report_notes(table, left_out, code_version)]
        if summary and not table.empty else [],
        columns=[{"key": c, "header": HEADERS[c], "better": "lower" if c in LOWER_IS_BETTER else "higher"}
                 for c in COLUMNS],
        partitions=partitions, scene_tables=_scene_tables(scenes, records, partitions) if summary else [],
        plot=plot, filters=filters, show_filters=any(len(v) > 1 for v in filters.values()), videos=len(records))
    return _INDENT.sub("\n", html)  # the template's indentation would be a quarter of a large page


def write_results_page(records: Iterable[Mapping], folder: Path, layout: ArtifactLayout, *,
                       page_dir: Path | None = None, table: pd.DataFrame | None = None,
                       scenes: pd.DataFrame | None = None, title: str = "Benchmark results",
                       summary: bool = True, left_out: Mapping[str, int] | None = None,
                       code_version: str | None = None) -> Path:
    """Write `index.html` into `folder` (a folder vf3d is writing, e.g. `atomic_dir`'s temporary), its links
    computed from `page_dir` (the folder's final place; default `folder`), showing the report's `benchmark.png`
    when it lies in `folder`; returns the file written."""
    page_dir = folder if page_dir is None else page_dir
    html = render_results_page(records, layout, page_dir, table=table, scenes=scenes,
                               plot=PLOT if summary and (folder / PLOT).is_file() else None, title=title,
                               summary=summary, left_out=left_out, code_version=code_version)
    path = folder / PAGE
    write_text_atomic(path, html)
    return path
