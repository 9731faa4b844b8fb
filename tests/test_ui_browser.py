"""The demo's runs as a user sees them: `vf3d ui` opened in headless Chromium (Playwright, Debian's /usr/bin/chromium).

The demo is materialized once into a temporary VF3D_HOME (module fixture), `vf3d ui` serves that home on a free
port, and the tests open the pages a user would: the global asset lineage with every group expanded, and the
Partitions view of one partition, where the markdown metadata's `[Show Markdown]` dialog must render the
data-URI thumbnail. Screenshots are kept in tests/artifacts/ (git-ignored), whether the test passes or not.
Chromium comes from `scripts/setup.sh` (apt-get as root); without it these tests fail, they do not skip.
The results page (`evaluation.results_page`) is opened from the demo's artifacts folder on disk and through the
address in the report's Dagster metadata, which `vf3d ui`'s artifact server serves.
"""

import base64
import io
import json
import os
import re
import subprocess
import time
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from conftest import demo_env
from ui_server import backfill, backfill_status, graphql, running_ui

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Headless on a closed network: no GPU, no sandbox (root), no background calls home (see scripts/setup.sh).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GRAPH_ASSETS = ("scene_source", "scene", "guidance", "style_reference", "style_lora", "anchors", "ggi_training_set",
                "ggi_weights", "warped_noise", "video", "video_sag_dense", "metrics_per_frame", "benchmark_report")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright; fails (never skips) when either is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver "
                    "(`bash scripts/setup.sh` as root does: apt-get install -y chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: "
                    "`.venv/bin/pip install -c requirements.lock -e '.[dev]'` (or `bash scripts/setup.sh`)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo_home(demo_run, browser):
    """The session's `vf3d demo` (conftest), which this module's UI serves."""
    home, demo = demo_run.home, demo_run.demo
    assert demo.returncode == 0, demo.stderr[-3000:]
    last = demo.stdout.strip().splitlines()[-4:]  # the honest ending: what tiny is, what ran, how to go real
    assert "random weights" in last[0] and "noise by design" in last[0]
    assert "every stage" in last[1] and "vf3d demo --profile full" in last[2]
    assert "5 method(s) (ggi, anchor_warp, bidirectional, sag_dense, per_frame)" in last[1]  # the default methods
    # and the one line to click: the results page
    assert last[3] == f"the results page: {(home / 'artifacts' / 'benchmark_report' / 'all' / 'index.html').as_uri()}"
    return home


HANG_GUARD_MS = 15 * 60_000


@pytest.fixture(scope="module")
def ui(demo_home):
    """`vf3d ui` on a free port over the demo's home; its whole process group is killed afterwards."""
    ARTIFACTS.mkdir(exist_ok=True)
    with running_ui(demo_env(demo_home), ARTIFACTS / "ui_dagster_dev.log", set(GRAPH_ASSETS)) as url:
        yield url


@pytest.fixture
def page(browser, ui):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=ui)
    # every wait below is on a condition (an element shows); this is only a guard against a hang: a busy machine
    # took over 60 s to draw the graph while other work ran
    context.set_default_timeout(HANG_GUARD_MS)
    page = context.new_page()
    # A fresh instance greets its first visitor with a newsletter dialog over the page: dismiss it whenever it shows.
    page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                             lambda: page.get_by_role("button", name="Skip").click())
    yield page
    context.close()


def test_asset_graph_shows_every_asset(page):
    try:
        page.goto("/asset-groups", wait_until="networkidle")
        page.get_by_text("Global asset lineage").wait_for()
        graph = page.locator("svg").filter(has=page.get_by_text("scenes", exact=True)).first
        graph.wait_for()
        page.keyboard.press("Alt+e")  # the graph's "Expand all groups" (its context menu shows the shortcut)
        jump = page.get_by_placeholder("Jump to")
        for asset in GRAPH_ASSETS:  # the graph draws only what is in view: jump to each asset, then see it
            jump.fill(asset)
            page.get_by_text(asset, exact=True).first.wait_for()  # its suggestion
            jump.press("Enter")
            page.locator("svg").get_by_text(asset, exact=True).first.wait_for(state="visible")  # a node of the graph
    finally:
        page.screenshot(path=ARTIFACTS / "ui_asset_graph.png")


@pytest.mark.parametrize("asset, partition, key", [
    ("guidance", "demo", "edge_contact_sheet"),
    ("style_lora", "photo", "loss_curve"),
    ("video", "demo|photo", "contact_sheet"),
    ("video", "demo|photo", "preview"),  # the video itself, playing: every frame, looping
    ("video", "demo|photo", "frames_and_edges"),
    ("anchors", "demo|photo", "anchors_warped_and_masks"),
    ("benchmark_report", None, "plot"),  # the metric plot of the benchmark table
])
def test_partition_metadata_picture_renders(page, asset, partition, key):
    try:
        # The Partitions view of one partition lists its latest materialization's metadata; an unpartitioned
        # asset's Events view lists its latest materialization's.
        view = "events" if partition is None else f"partitions&partition={urllib.parse.quote(partition)}"
        page.goto(f"/assets/{asset}?view={view}", wait_until="networkidle")
        row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))
        row.get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog").filter(has_text=key)
        image = dialog.locator("img")
        image.wait_for()
        src, width, height = image.evaluate("i => i.decode().then(() => [i.src, i.naturalWidth, i.naturalHeight])")
        assert width > 0 and height > 0, (width, height)
        if key == "preview":  # what the browser was served is an animation of every frame, looping forever
            assert src.startswith("data:image/gif;base64,"), src[:80]
            gif = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert gif.is_animated and gif.n_frames == 46 and gif.info["loop"] == 0
        else:
            assert src.startswith("data:image/png;base64,"), src[:80]
        if asset == "benchmark_report":  # the plot reads whole: nothing cut off at the dialog's right edge
            fits = image.evaluate("i => i.getBoundingClientRect().right <= "
                                  "i.closest('[role=dialog]').getBoundingClientRect().right + 1")
            assert fits and width <= 800, width
    finally:
        page.screenshot(path=ARTIFACTS / f"ui_{asset}_{key}.png")


def test_blender_addon_renders_a_shot_through_the_running_ui(ui, demo_home, tmp_path):
    """The add-on, installed from the zip `vf3d blender-addon` writes, in headless Blender (bpy): refusals are one
    line and register nothing; a real press registers the shot, launches its stages on the `vf3d ui` of this module
    and, once the run is done, the mp4 is a strip in the Video Sequencer."""
    import blender_scenes

    env = demo_env(demo_home)
    vf3d = Path(sys.executable).with_name("vf3d")
    written = subprocess.run([str(vf3d), "blender-addon", "--out", str(tmp_path / "addon")], capture_output=True,
                             text=True, env=env, timeout=120, check=True)
    addon_zip = tmp_path / "addon" / "vf3d_render.zip"
    assert f"the add-on: {addon_zip}" in written.stdout
    blender_scenes.dolly_over_plane(tmp_path / "my shot.blend", frames=8, step=0.05, occluder=True)
    Image.new("RGB", (64, 48), (30, 120, 200)).save(tmp_path / "blue.png")
    catalog = demo_home / "catalog.json"
    driver = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("blender_addon_driver.py")), str(addon_zip),
         str(tmp_path / "my shot.blend"), str(tmp_path / "blue.png"), ui, str(vf3d), str(tmp_path / "seen.json"),
         str(catalog)],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path,
        env={**env, "BLENDER_USER_RESOURCES": str(tmp_path / "blender")})  # the add-on installs here, not in ~
    assert driver.returncode == 0, driver.stderr[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())

    assert seen["panel"]
    expected = {"no style image": "choose a style reference image", "instance not running": "start it with `vf3d ui`",
                "no camera": "has no active camera", "no animation": "camera 'Camera' is not animated"}
    for case, text in expected.items():
        assert seen["errors"][case].startswith("Error: ") and text in seen["errors"][case], (case, seen["errors"])
        assert "\n" not in seen["errors"][case]
    assert not seen["registered_after_errors"]

    mp4 = demo_home / "artifacts" / "video" / "my_shot__blue" / "video.mp4"
    assert seen["render"] == "", seen
    # a shot new to the running instance waits for the daemon to read the reloaded code, then runs once
    statuses = seen["statuses"]
    assert statuses[0].startswith("waiting for the Dagster daemon to read the new shot"), statuses
    assert statuses[1] == "running: 0/7 stages done" and statuses[-1] == f"done: {mp4}", statuses
    assert len(seen["backfill_ids"]) == 1, seen
    assert mp4.is_file() and seen["strips"] == [{"type": "MOVIE", "filepath": str(mp4), "frames": 8}]
    assert seen["shot_scene_strips"] == 0
    # registered in the working folder's catalog, from vf3d's own copy of the scene
    registered = json.loads(catalog.read_text())
    assert registered["shots"] == [{"scene": "my_shot", "style": "blue"}]
    assert registered["scenes"][0]["source"] == str(demo_home / "shots" / "my_shot.blend")
    # and it went through Dagster: the video partition was materialized by a run of the add-on's backfill
    video = graphql(ui, '{ assetOrError(assetKey: {path: ["video"]}) { ... on Asset { '
                         'assetMaterializations(partitions: ["my_shot|blue"], limit: 1) { runId } } } }')
    run_id = video["assetOrError"]["assetMaterializations"][0]["runId"]
    tags = graphql(ui, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ tags {{ key value }} }} }} }}')
    assert {"key": "dagster/backfill", "value": seen["backfill_ids"][0]} in tags["runOrError"]["tags"]


# --- the results page -------------------------------------------------------------------------------------------

ROW_VIDEOS = "shot => Array.from(shot.querySelectorAll('video'))"


@pytest.fixture
def results(browser):
    """A fresh browser tab for the results page (opened from disk or from the artifact server)."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(HANG_GUARD_MS)
    yield context.new_page()
    context.close()


def column_values(page, header: str) -> list[str]:
    """The overall table's `data-sort` values of one column, in the order shown."""
    index = page.locator("#overall-table thead th").all_inner_texts().index(header)
    return page.eval_on_selector_all("#overall-table tbody tr",
                                     f"rows => rows.map(r => r.cells[{index}].dataset.sort)")


def sorted_as_shown(values: list[str], descending: bool) -> bool:
    """In order, missing values ('') last whichever the direction."""
    present = [float(v) for v in values if v != ""]
    return present == sorted(present, reverse=descending) and values[len(present):] == [""] * (len(values) - len(present))


def test_results_page_from_disk_plays_a_row_in_sync_sorts_and_filters(results, demo_home):
    page_file = demo_home / "artifacts" / "benchmark_report" / "all" / "index.html"
    page = results
    try:
        page.goto(page_file.as_uri(), wait_until="load")
        shot = page.locator("article.shot").first
        shot.scroll_into_view_if_needed()  # a row's videos load when it comes near the screen
        handle = shot.element_handle()
        methods = shot.locator("figure[data-method]").evaluate_all("fs => fs.map(f => f.dataset.method)")
        assert methods == ["ggi", "bidirectional", "sag_dense", "per_frame", "anchor_warp"]
        # every method's mp4 decodes in Chromium as encoded (H.264): at least two, in fact all five
        page.wait_for_function(f"shot => ({ROW_VIDEOS})(shot).filter(v => v.readyState >= 2).length === 5",
                               arg=handle)
        # one play button starts every video of the row, and they stay together
        shot.locator("button.play").click()
        page.wait_for_function(f"shot => ({ROW_VIDEOS})(shot).every(v => !v.paused && v.currentTime > 0.5)",
                               arg=handle)
        times = shot.locator("video").evaluate_all("vs => vs.map(v => v.currentTime)")
        assert max(times) - min(times) < 0.25, times  # within two frames at 8 fps
        page.screenshot(path=ARTIFACTS / "results_page_playing.png")
        shot.locator("button.play").click()
        page.wait_for_function(f"shot => ({ROW_VIDEOS})(shot).every(v => v.paused)", arg=handle)
        # one scrubber moves them all, and the edge map beside them shows the frame on screen
        shot.locator("input.scrub").evaluate("s => { s.value = '0.5'; s.dispatchEvent(new Event('input')); }")
        page.wait_for_function(f"shot => ({ROW_VIDEOS})(shot).every(v => Math.abs(v.currentTime - v.duration / 2)"
                               " < 0.05 && !v.seeking)", arg=handle)
        frame = int(shot.locator("video").first.evaluate("v => Math.floor(v.currentTime * 8 + 1e-3)"))
        assert shot.locator("img.edge-now").get_attribute("src").endswith(f"/guidance/demo/edges/{frame:05d}.png")
        assert shot.locator(".guides img").count() >= 5  # two anchors, their edge maps, the frame's edge map

        # sorting reorders the table: best first (higher PSNR-D), then the other way; n/a rows stay last
        before = page.locator("#overall-table tbody th").all_inner_texts()
        page.locator("#overall-table thead th", has_text="PSNR-D↑").locator("button").click()
        assert sorted_as_shown(column_values(page, "PSNR-D↑"), descending=True)
        after = page.locator("#overall-table tbody th").all_inner_texts()
        assert after != before and sorted(after) == sorted(before)
        page.locator("#overall-table thead th", has_text="PSNR-D↑").locator("button").click()
        assert sorted_as_shown(column_values(page, "PSNR-D↑"), descending=False)
        page.locator("#overall-table thead th", has_text="LPIPS↓").locator("button").click()  # lower is better
        assert sorted_as_shown(column_values(page, "LPIPS↓"), descending=False)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=ARTIFACTS / "results_page_sorted.png")

        # the filter hides the other methods' rows and videos
        page.select_option("#filter-method", "anchor_warp")
        shown_rows = page.locator("#overall-table tbody tr:visible")
        assert shown_rows.count() == 1 and "anchors warped by mesh flows" in shown_rows.inner_text()
        assert page.locator("#overall-table tbody tr").count() == 11  # 5 of ours and the paper's 6, hidden
        assert shot.locator("figure[data-method]:visible").evaluate_all("fs => fs.map(f => f.dataset.method)") == [
            "anchor_warp"]
        page.screenshot(path=ARTIFACTS / "results_page_filtered.png")
        page.select_option("#filter-method", "")
        assert page.locator("#overall-table tbody tr:visible").count() == 11
    finally:
        page.screenshot(path=ARTIFACTS / "results_page_disk.png", full_page=True)


def test_results_page_filter_hides_other_shots(results, tmp_path):
    """Scene and style filters on a page of several shots (stand-in media: the demo has one shot)."""
    from test_results_page import video_folder, write_page

    from evaluation.standin_results import write_standin_results

    root = tmp_path / "artifacts"
    records = write_standin_results(root, (("cottage", "object-centric"), ("street", "outdoor")),
                                    ("painterly", "photo"), ("ggi", "sag_dense"), video_folder, frames=8)
    page = results
    try:
        page.goto(write_page(root, records).as_uri(), wait_until="load")
        shots = page.locator("article.shot")
        assert shots.count() == 4 and page.locator("#filter-count").inner_text() == "4 of 4 shots shown"
        page.select_option("#filter-scene", "street")
        assert [s.get_attribute("id") for s in shots.filter(visible=True).all()] == [
            "shot-street__painterly", "shot-street__photo"]
        assert page.locator("#scenes details:visible").evaluate_all("ds => ds.map(d => d.dataset.scene)") == [
            "street"]
        page.select_option("#filter-style", "photo")
        assert [s.get_attribute("id") for s in shots.filter(visible=True).all()] == ["shot-street__photo"]
        assert page.locator("#filter-count").inner_text() == "1 of 4 shots shown"
        page.select_option("#filter-method", "sag_dense")
        assert page.locator("article.shot:visible figure[data-method]:visible").count() == 1
        page.screenshot(path=ARTIFACTS / "results_page_standin_filtered.png", full_page=True)
        for name in ("#filter-scene", "#filter-style", "#filter-method"):
            page.select_option(name, "")
        assert shots.filter(visible=True).count() == 4
    finally:
        page.screenshot(path=ARTIFACTS / "results_page_standin.png")


def test_results_page_link_in_the_dagster_metadata_is_served(ui, page):
    """`vf3d ui` serves the artifacts folder on a second port (printed at start); the report materialized under it
    links to its page there, one click from the asset's page; the page's videos play through that server."""
    log = (ARTIFACTS / "ui_dagster_dev.log").read_text()
    served = re.search(r"the artifacts folder is served read-only at (http://127\.0\.0\.1:\d+)/", log)
    assert served, log[-2000:]
    backfill_id = backfill(ui, {"benchmark_report": None})
    deadline, status = time.time() + 600, {}
    while time.time() < deadline and not str(status.get("status", "")).startswith(("COMPLETED", "FAILED", "CANCEL")):
        time.sleep(3)
        status = backfill_status(ui, backfill_id)
    assert status["status"] == "COMPLETED_SUCCESS" and {r["status"] for r in status["runs"]} == {"SUCCESS"}, status
    answer = graphql(ui, '{ assetOrError(assetKey: {path: ["benchmark_report"]}) { ... on Asset { '
                         'assetMaterializations(limit: 1) { metadataEntries { label '
                         '... on UrlMetadataEntry { url } } } } } }')
    entries = answer["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
    url = next(e["url"] for e in entries if e["label"] == "results_page")
    assert url == f"{served.group(1)}/benchmark_report/all/index.html"
    try:
        page.goto("/assets/benchmark_report?view=events", wait_until="networkidle")
        link = page.locator(f'a[href="{url}"]').first
        with page.context.expect_page() as opened:
            link.click()
        shown = opened.value
        shown.wait_for_load_state("load")
        assert shown.url == url
        # the page's videos come through the server with byte ranges (what scrubbing needs); read directly, so that
        # this check does not depend on the browser's media pipeline (the disk test covers playback in sync)
        src = shown.locator("article.shot video").first.evaluate("v => v.currentSrc || v.src || v.dataset.src")
        video_url = urllib.parse.urljoin(url, src)
        request = urllib.request.Request(video_url, headers={"Range": "bytes=0-99"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 206 and len(answer.read()) == 100, video_url
        shown.screenshot(path=ARTIFACTS / "results_page_served.png")
    finally:
        page.screenshot(path=ARTIFACTS / "ui_benchmark_report_results_link.png")
