"""The demo's runs as a user sees them: `vf3d ui` opened in headless Chromium (Playwright, Debian's /usr/bin/chromium).

The demo is materialized once into a temporary VF3D_HOME (module fixture), `vf3d ui` serves that home on a free
port, and the tests open the pages a user would: the global asset lineage with every group expanded, and the
Partitions view of one partition, where the markdown metadata's `[Show Markdown]` dialog must render the
data-URI thumbnail. Screenshots are kept in tests/artifacts/ (git-ignored), whether the test passes or not.
Chromium comes from `scripts/setup.sh` (apt-get as root); without it these tests fail, they do not skip.
"""

import base64
import io
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image
from conftest import demo_env
from ui_server import graphql, running_ui

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
    last = demo.stdout.strip().splitlines()[-3:]  # the honest ending: what tiny is, what ran, how to go real
    assert "random weights" in last[0] and "noise by design" in last[0]
    assert "every stage" in last[1] and "vf3d demo --profile full" in last[2]
    assert "5 method(s) (ggi, anchor_warp, bidirectional, sag_dense, per_frame)" in last[1]  # the default methods
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
    assert seen["render"] == "" and seen["backfill_id"], seen
    statuses = seen["statuses"]
    assert statuses[0] == "running: 0/7 stages done" and statuses[-1] == f"done: {mp4}", statuses
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
    assert {"key": "dagster/backfill", "value": seen["backfill_id"]} in tags["runOrError"]["tags"]
