"""Nothing a user owns is lost through `--out`, every input is checked before work starts, and linked
libraries are followed only where the user allows."""

import json
import os
import signal
import subprocess
import sys
import time

import blender_scenes
import bpy
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from vf3d.benchmark.catalog import load_catalog
from vf3d.common import limits
from vf3d.common.errors import VF3DInputError
from vf3d.common.limits import check_reference_image
from vf3d.preprocess import guidance
from vf3d.preprocess.blend_libraries import linked_libraries, stored_library_paths
from vf3d.preprocess.guidance import describe_shot

W, H = 48, 32


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- --out never destroys what the user has ------------------------------------------------------------------

def test_out_pointing_at_user_files_is_refused_before_rendering(capsys, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shot_dir = project / "shot"
    shot_dir.mkdir(parents=True)
    blend = blender_scenes.dolly_over_plane(shot_dir / "shot.blend", frames=2)
    (shot_dir / "notes.txt").write_text("client notes")
    (shot_dir / "refs").mkdir()
    (shot_dir / "refs" / "mood.png").write_bytes(b"png")
    before = tree(tmp_path)
    from vf3d.preprocess.blender import scene_io
    monkeypatch.setattr(scene_io, "load_shot", lambda *a, **k: pytest.fail("refused only after opening the shot"))
    cases = [(shot_dir, "an input of this run"), (project, "an input of this run"), (blend, "an input of this run"),
             (shot_dir / "notes.txt", "not a folder vf3d wrote"), (shot_dir / "refs", "was not written by vf3d")]
    for out, words in cases:
        assert_one_line_error(*run_cli(capsys, "preprocess", blend, "--out", out, "--width", W, "--height", H),
                              str(out), words)
    monkeypatch.chdir(shot_dir)
    assert_one_line_error(*run_cli(capsys, "preprocess", blend, "--out", ".", "--width", W, "--height", H),
                          "an input of this run")
    assert tree(tmp_path) == before


def test_rerun_into_an_earlier_output_replaces_it(capsys, tmp_path):
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    out = tmp_path / "guidance"
    for _ in range(2):
        assert run_cli(capsys, "preprocess", blend, "--out", out, "--width", W, "--height", H)[0] == 0
    assert len(list((out / "edges").glob("*.png"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guidance", "shot.blend"]


def test_two_concurrent_preprocess_runs_into_one_out_both_end_cleanly(tmp_path):
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=60, step=0.01)
    out = tmp_path / "guidance"
    command = [sys.executable, "-m", "vf3d_assets.cli", "preprocess", str(blend), "--out", str(out),
               "--width", "96", "--height", "64"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None and not any(
            len(list(t.glob("edges/*.png"))) >= 2 for t in tmp_path.glob(".tmp-guidance.*")):
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # hold the first run mid-render, so the two surely overlap
    try:
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        waiting = second.stderr.readline()  # blocks until the second run reaches the output
        assert "waiting for another vf3d run" in waiting
    finally:
        first.send_signal(signal.SIGCONT)
    first_out, first_err = first.communicate(timeout=600)
    second_out, second_err = second.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert len(list((out / "edges").glob("*.png"))) == 60
    assert not list(tmp_path.glob(".tmp-*"))


# --- sizes ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height, words", [
    (70000, 480, ["exceeds Blender's maximum of 65536"]),
    (8192, 8192, ["exceeds vf3d's maximum"]),
    (4, 480, ["too small"]),
])
def test_render_sizes_beyond_the_limits_are_one_line(capsys, tmp_path, width, height, words):
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    assert_one_line_error(*run_cli(capsys, "preprocess", blend, "--out", tmp_path / "o", "--width", width,
                                   "--height", height), "shot.blend", *words)
    assert not (tmp_path / "o").exists()


def test_a_render_too_large_for_memory_is_refused_before_rendering(capsys, tmp_path, monkeypatch):
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=3)
    monkeypatch.setattr(guidance, "available_memory_bytes", lambda: 64 * 2**20)
    assert_one_line_error(*run_cli(capsys, "preprocess", blend, "--out", tmp_path / "o", "--width", 2048,
                                   "--height", 2048), "shot.blend", "needs about", "GiB of memory", "available")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".tmp-*"))


def test_catalog_render_sizes_must_fit_the_models(tmp_path):
    user = tmp_path / "mine.json"
    for render, words in [({"width": 720, "height": 500}, "multiple of 16"), ({"width": True, "height": 480}, "integers"),
                          ({"width": 70000, "height": 480}, "65536")]:
        user.write_text(json.dumps({"scenes": [{"key": "shot", "source": "s.blend", "render": render}]}))
        with pytest.raises(VF3DInputError, match=words) as info:
            load_catalog([user])
        assert str(info.value).startswith(str(user)) and "scene 'shot'" in str(info.value)


# --- trajectory JSON -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"fov_x_deg": True}, ["'fov_x_deg' must be a number", "True"]),
    ({"width": 720.5}, ["'width' and 'height'", "integers"]),
    ({"camera_to_world": [[[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]] * 2},
     ["non-finite entry", "row 0, column 3"]),
])
def test_bad_trajectory_values(capsys, shots, tmp_path, change, words):
    glb = shots / "export.glb"
    if not glb.exists():
        blender_scenes.export_glb_with_trajectory(blender_scenes.interpenetrating_boxes(shots / "export.blend"),
                                                  glb, shots / "export.json", 2)
    data = {**json.loads((shots / "export.json").read_text()), **change}
    data.pop("intrinsics", None) if "fov_x_deg" in change else None
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps(data))
    assert_one_line_error(*run_cli(capsys, "preprocess", glb, "--trajectory", traj, "--out", tmp_path / "o"),
                          "traj.json", *words)


# --- style references ----------------------------------------------------------------------------------------

def test_reference_images_are_opened_and_verified(tmp_path, monkeypatch):
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(good)
    assert check_reference_image(good) == (64, 48)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    with pytest.raises(VF3DInputError, match="not found"):
        check_reference_image(tmp_path / "missing.png")
    for bad in (truncated, text):
        with pytest.raises(VF3DInputError, match="not a readable image") as info:
            check_reference_image(bad)
        assert str(info.value).startswith(str(bad))
    monkeypatch.setattr(limits, "MAX_REFERENCE_PIXELS", 1000)
    with pytest.raises(VF3DInputError, match="64x48 .* the limit is 0 MP"):
        check_reference_image(good)


def test_demo_checks_the_partition_inputs_before_any_work(capsys, monkeypatch):
    from conftest import USER_CATALOG_DIR

    from vf3d_assets.partitions import catalog

    reference = catalog.style("test_style").reference
    saved = reference.read_bytes()
    scene_file = USER_CATALOG_DIR / "shot_a.blend"
    try:
        reference.write_bytes(saved[:40])  # corrupt
        import dagster
        monkeypatch.setattr(dagster.JobDefinition, "execute_in_process",
                            lambda *a, **k: pytest.fail("a run started before the inputs were checked"))
        if not scene_file.exists():
            blender_scenes.dolly_over_plane(scene_file, frames=2)
        assert_one_line_error(*run_cli(capsys, "demo", "--scene", "test_shot_a", "--style", "test_style"),
                              "test_style.png", "not a readable image")
    finally:
        reference.write_bytes(saved)


# --- linked libraries ----------------------------------------------------------------------------------------

def linking_shot(shot_path, library_path, relative):
    """A shot whose geometry is a cube linked from `library_path`, plus a ground plane of its own."""
    blender_scenes.reset()
    blender_scenes.box("LibraryCube", (0, 0, -8), (3, 3, 3))
    library_path.parent.mkdir(parents=True, exist_ok=True)
    shot_path.parent.mkdir(parents=True, exist_ok=True)
    blender_scenes.save(library_path)
    blender_scenes.dolly_over_plane(shot_path, frames=2)
    with bpy.data.libraries.load(str(library_path), link=True, relative=relative) as (_, linked):
        linked.objects = ["LibraryCube"]
    for obj in linked.objects:
        bpy.context.scene.collection.objects.link(obj)
    bpy.ops.wm.save_as_mainfile(filepath=str(shot_path), relative_remap=relative)
    return shot_path


def test_libraries_are_read_from_the_file_itself(tmp_path):
    shot = linking_shot(tmp_path / "shot" / "shot.blend", tmp_path / "shot" / "assets" / "cube.blend", True)
    assert stored_library_paths(shot) == ["//assets/cube.blend"]
    (found,) = linked_libraries(shot)
    assert found.path == tmp_path / "shot" / "assets" / "cube.blend" and found.linked_from == shot


def test_a_link_outside_the_shot_folder_is_refused_before_blender_opens_it(capsys, tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere" / "cube.blend"
    shot = linking_shot(tmp_path / "shot" / "shot.blend", outside, False)
    from vf3d.preprocess.blender import scene_io
    monkeypatch.setattr(scene_io, "_open_blend", lambda path: pytest.fail("Blender opened the file"))
    assert_one_line_error(*run_cli(capsys, "preprocess", shot, "--out", tmp_path / "o", "--width", W,
                                   "--height", H), "shot.blend", str(outside), "outside the shot's folder")
    assert not (tmp_path / "o").exists()


def test_allowed_libraries_are_rendered_and_hashed(capsys, tmp_path):
    library = tmp_path / "library" / "cube.blend"
    shot = linking_shot(tmp_path / "shot" / "shot.blend", library, False)
    out = tmp_path / "o"
    assert run_cli(capsys, "preprocess", shot, "--out", out, "--width", W, "--height", H,
                   "--allow-library", tmp_path / "library")[0] == 0
    meta = json.loads((out / "meta.json").read_text())
    assert [lib["file"] for lib in meta["libraries"]] == [str(library)]
    depth = np.load(out / "depth.npy")[0]
    assert np.nanmin(depth[np.isfinite(depth)]) < 7.0  # the linked cube's top (8 - 1.5 below the camera)
    # Editing the library changes the shot's description, so the scene goes stale.
    first = describe_shot(shot, W, H, library_paths=[tmp_path / "library"])
    blender_scenes.reset()
    blender_scenes.box("LibraryCube", (0, 0, -8), (4, 4, 4))
    blender_scenes.save(library)
    second = describe_shot(shot, W, H, library_paths=[tmp_path / "library"])
    assert first["libraries"][0]["sha256"] != second["libraries"][0]["sha256"]


def test_scene_source_hashes_linked_libraries_and_stale_names_missing_files(tmp_path):
    library = tmp_path / "shot" / "assets" / "cube.blend"
    shot = linking_shot(tmp_path / "shot" / "shot.blend", library, True)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps({"render": {"width": 64, "height": 48}, "scenes": [
        {"key": "linked", "source": "shot/shot.blend"}, {"key": "gone", "source": "shot/gone.blend"}],
        "styles": [{"key": "look", "reference": "look.png", "identifier": "a photo in zkx style"}]}))
    catalog = load_catalog([catalog_file])
    assert catalog.scene("linked").input_files() == [shot, library]
    from vf3d_assets.staleness import StalePartition, explain, input_problems

    problems = input_problems(catalog, styles=[])
    assert list(problems.scenes) == ["gone"] and "gone.blend" in problems.scenes["gone"]
    item = explain(StalePartition("scene", "gone", ("scene_source[gone] has a new dependency data version",)),
                   problems)
    assert "input unusable" in str(item) and "gone.blend" in str(item) and "new dependency" not in str(item)
    os.remove(library)
    assert "does not exist" in input_problems(catalog, styles=[]).scenes["linked"]


CONCURRENT_RUN = """
import sys
from dagster import DagsterInstance, materialize
from resources import GPU, ArtifactStore, BlenderRenderer, ModelStore
from vf3d_assets.assets import ALL_ASSETS
from vf3d_assets.instance import ensure_dagster_home

ensure_dagster_home()
result = materialize(ALL_ASSETS, selection=["scene", "guidance"], partition_key="concurrent",
                     instance=DagsterInstance.get(),
                     resources={"artifacts": ArtifactStore(root=sys.argv[1]), "blender": BlenderRenderer(threads=1),
                                "models": ModelStore(profile="tiny"), "gpu": GPU(device="cpu")},
                     raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def test_two_dagster_runs_of_one_partition_both_end_cleanly(tmp_path):
    """Two runs materializing the same scene partition in one instance: the second waits, neither crashes."""
    blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=60, step=0.01)
    (tmp_path / "catalog.json").write_text(json.dumps({
        "render": {"width": 96, "height": 64}, "scenes": [{"key": "concurrent", "source": "shot.blend"}],
        "styles": [{"key": "concurrent_look", "reference": "look.png", "identifier": "a photo in qqz style"}]}))
    Image.new("RGB", (32, 32)).save(tmp_path / "look.png")
    env = {**os.environ, "VF3D_USER_CATALOG": str(tmp_path / "catalog.json"), "VF3D_HOME": str(tmp_path / "home"),
           "DAGSTER_HOME": str(tmp_path / "home" / "dagster_home")}
    artifacts = tmp_path / "artifacts"
    command = [sys.executable, "-c", CONCURRENT_RUN, str(artifacts)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not any(
            len(list(t.glob("edges/*.png"))) >= 2 for t in (artifacts / "guidance").glob(".tmp-concurrent.*")):
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1][-3000:]
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = []
        while not any("waiting for another vf3d run" in line for line in lines):
            line = second.stderr.readline()
            assert line, "the second run ended without waiting:\n" + "".join(lines)
            lines.append(line)
    finally:
        first.send_signal(signal.SIGCONT)
    first_err = first.communicate(timeout=600)[1]
    second_err = second.communicate(timeout=600)[1]
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode == 0, second_err[-3000:]
    assert len(list((artifacts / "guidance" / "concurrent" / "edges").glob("*.png"))) == 60
    assert not list((artifacts / "guidance").glob(".tmp-*"))
