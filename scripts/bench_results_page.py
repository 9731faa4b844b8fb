"""Benchmark: the results page at the full benchmark's size (16 scenes x 3 styles x 5 methods), on stand-ins.

    .venv/bin/python scripts/bench_results_page.py [--out DIR] [--runs 3]

Writes stand-in records and tiny media (`evaluation.standin_results`) into a fresh artifacts folder (`--out`, a
temporary one by default), the report and its page as the `benchmark_report` asset does, then opens the page
in headless Chromium (Debian's /usr/bin/chromium) from disk and through the artifact server `vf3d ui` starts.
Prints the page's size, what it links to, and per way in the median over `--runs` loads of: DOMContentLoaded,
the load event, and the first shot's videos all at readyState >= 2. Screenshots: `--out`/screenshot_*.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from evaluation.metrics import METRICS_CODE_VERSION, PAPER_TABLE2
from evaluation.report import current_records, paper_rows_as_dicts, write_report
from evaluation.results_page import ArtifactLayout, write_results_page
from evaluation.standin_results import write_standin_results
from vf3d.baselines.methods import DEFAULT_METHODS
from vf3d.benchmark.catalog import BENCHMARK_CATALOG, load_catalog
from vf3d.common.atomic import atomic_dir

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def video_folder(method: str) -> str:
    # as vf3d_assets.assets.ggi.video_asset_name, without importing the Dagster layer (and torch) for a benchmark
    return "video" if method == "ggi" else f"video_{method}"


def build(root: Path) -> tuple[Path, float]:
    """Stand-ins, report and page under `root`; the page and the seconds the report + page took."""
    catalog = load_catalog([BENCHMARK_CATALOG])
    scenes = sorted((k, s.category) for k, s in catalog.scenes.items() if s.category != "demo")
    records = write_standin_results(root, scenes, sorted(catalog.styles), DEFAULT_METHODS, video_folder)
    out = root / "benchmark_report" / "all"
    started = time.perf_counter()
    # as the benchmark_report asset does
    partitions = {(scene, style) for scene, _ in scenes for style in catalog.styles}
    records, left_out = current_records(records, METRICS_CODE_VERSION, partitions)
    with atomic_dir(out) as tmp:
        paths = write_report(records, paper_rows_as_dicts(PAPER_TABLE2), tmp, left_out=left_out,
                             code_version=METRICS_CODE_VERSION)
        write_results_page(records, tmp, ArtifactLayout(root, video_folder), page_dir=out,
                           table=pd.read_csv(paths["benchmark"]), scenes=pd.read_csv(paths["per_scene"]),
                           left_out=left_out, code_version=METRICS_CODE_VERSION)
    return out / "index.html", time.perf_counter() - started


def measure(browser, url: str, shots: Path, name: str, runs: int) -> dict:
    timings = []
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        loaded = time.perf_counter() - started
        page.locator("article.shot").first.scroll_into_view_if_needed()
        page.wait_for_function("Array.from(document.querySelector('article.shot').querySelectorAll('video'))"
                               ".every(v => v.readyState >= 2)", timeout=60_000)
        first_row = time.perf_counter() - started
        navigation = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
        navigation = json.loads(navigation)
        timings.append({"dom_content_loaded_ms": navigation["domContentLoadedEventEnd"],
                        "load_event_ms": navigation["loadEventEnd"], "goto_load_s": loaded,
                        "first_row_videos_ready_s": first_row})
        if run == 0:
            page.screenshot(path=shots / f"screenshot_{name}.png")
        context.close()
    return {key: round(statistics.median(t[key] for t in timings), 3) for key in timings[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the stand-in artifacts (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vf3d-bench-page-"))
    root = out / "artifacts"
    page, seconds = build(root)
    html = page.read_text()
    print(f"page: {page}")
    print(f"report + page written in {seconds:.1f} s")
    print(f"index.html: {page.stat().st_size / 1024:.0f} KiB, {html.count('<video')} <video>, "
          f"{html.count('<img')} <img>, {html.count('<tr')} table rows")
    linked = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".mp4", ".png") and ".standin" not in str(p)]
    print(f"linked media on disk (not copied): {sum(p.stat().st_size for p in linked) / 1024 / 1024:.1f} MiB")

    from playwright.sync_api import sync_playwright

    from vf3d_assets.artifact_server import start_artifact_server

    url, server = start_artifact_server(root)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for name, address in (("disk", page.as_uri()), ("served", f"{url}/benchmark_report/all/index.html")):
                print(f"{name}: {json.dumps(measure(browser, address, out, name, args.runs))}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
