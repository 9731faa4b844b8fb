"""User scenes (.blend, .glb + trajectory JSON), segmentation, and every bad input of the foundation issue."""

import json
import signal
import subprocess
import sys
import time

import blender_scenes
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from vf3d.preprocess.camera import split_segments
from vf3d.preprocess.guidance import preprocess

W, H = 48, 32


def test_segments_share_boundary_frames():
    assert split_segments(46) == [(0, 45)]
    assert split_segments(100) == [(0, 45), (45, 90), (90, 99)]
    assert split_segments(91) == [(0, 45), (45, 90)]


def test_glb_with_trajectory_matches_the_blend(shots):
    blend = blender_scenes.interpenetrating_boxes(shots / "export.blend")
    from_blend = shots / "export_blend_out"
    preprocess(blend, from_blend, W, H)
    glb, traj = blender_scenes.export_glb_with_trajectory(blend, shots / "export.glb", shots / "export.json", 2)
    from_glb = shots / "export_glb_out"
    preprocess(glb, from_glb, W, H, trajectory=traj)
    a, b = (json.loads((d / "meta.json").read_text()) for d in (from_blend, from_glb))
    np.testing.assert_allclose(a["camera_to_world"], b["camera_to_world"], atol=1e-5)
    np.testing.assert_allclose(list(a["intrinsics"].values()), list(b["intrinsics"].values()), rtol=1e-5)
    depth_a, depth_b = np.load(from_blend / "depth.npy"), np.load(from_glb / "depth.npy")
    np.testing.assert_array_equal(np.isfinite(depth_a), np.isfinite(depth_b))
    finite = np.isfinite(depth_a)
    np.testing.assert_allclose(depth_a[finite], depth_b[finite], rtol=1e-4)


def test_100_frame_trajectory_becomes_3_segments(shots):
    blend = blender_scenes.dolly_over_plane(shots / "long.blend", frames=2)
    glb, traj = blender_scenes.export_glb_with_trajectory(blend, shots / "long.glb", shots / "long.json", 2)
    data = json.loads(traj.read_text())
    start, end = np.array(data["camera_to_world"])
    data["camera_to_world"] = [(start + (end - start) * t).tolist() for t in np.linspace(0, 1, 100)]
    traj.write_text(json.dumps(data))
    out = shots / "long_out"
    preprocess(glb, out, 18, 12, trajectory=traj)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["segments"] == [[0, 45], [45, 90], [90, 99]]
    assert len(list((out / "edges").glob("*.png"))) == 100
    assert np.load(out / "depth.npy").shape == (100, 12, 18)
    lengths = []
    for k in range(3):
        with np.load(out / "flows" / f"seg{k:03d}.npz") as seg:
            lengths.append(len(seg["forward"]))
            assert seg["end_to_start"].shape == (12, 18, 2) and seg["end_to_start_valid"].shape == (12, 18)
    assert lengths == [45, 45, 9]


def test_missing_file_and_unsupported_extension(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "preprocess", tmp_path / "nope.blend", "--out", tmp_path / "o"),
                          "nope.blend", "not found")
    (tmp_path / "shot.fbx").write_bytes(b"\0")
    assert_one_line_error(*run_cli(capsys, "preprocess", tmp_path / "shot.fbx", "--out", tmp_path / "o"),
                          "shot.fbx", "unsupported")
    (tmp_path / "broken.blend").write_bytes(b"not a blend file")
    assert_one_line_error(*run_cli(capsys, "preprocess", tmp_path / "broken.blend", "--out", tmp_path / "o"),
                          "broken.blend", "cannot read")


@pytest.mark.parametrize("builder, words", [
    (blender_scenes.no_camera, ["no active camera"]),
    (blender_scenes.one_frame, ["1 frame", "at least 2"]),
    (blender_scenes.camera_only, ["no renderable geometry"]),
])
def test_bad_blend_files(capsys, tmp_path, builder, words):
    path = builder(tmp_path / f"{builder.__name__}.blend")
    assert_one_line_error(*run_cli(capsys, "preprocess", path, "--out", tmp_path / "o"), path.name, *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, words", [
    ("{not json", ["malformed trajectory JSON"]),
    (json.dumps({"width": 4, "height": 4, "fov_x_deg": 50, "camera_to_world": [np.eye(4).tolist()] * 3}),
     ["does not move"]),
    (json.dumps({"width": 4, "height": 4, "fov_x_deg": 50, "camera_to_world": [[1, 2], [3, 4]]}),
     ["camera_to_world[0]"]),
    (json.dumps({"width": 4, "height": 4, "camera_to_world": []}), ["at least 2"]),
])
def test_bad_trajectory_json(capsys, shots, tmp_path, content, words):
    glb = shots / "export.glb"
    if not glb.exists():
        blender_scenes.export_glb_with_trajectory(blender_scenes.interpenetrating_boxes(shots / "export.blend"),
                                                  glb, shots / "export.json", 2)
    traj = tmp_path / "traj.json"
    traj.write_text(content)
    assert_one_line_error(*run_cli(capsys, "preprocess", glb, "--trajectory", traj, "--out", tmp_path / "o"),
                          "traj.json", *words)


def test_bad_input_keeps_the_previous_output(capsys, shots, tmp_path):
    out = tmp_path / "o"
    preprocess(blender_scenes.dolly_over_plane(tmp_path / "good.blend", frames=2), out, W, H)
    before = (out / "meta.json").read_bytes()
    bad = blender_scenes.camera_only(tmp_path / "bad.blend")
    assert_one_line_error(*run_cli(capsys, "preprocess", bad, "--out", out), "bad.blend")
    assert (out / "meta.json").read_bytes() == before


def test_bad_partition_key(capsys):
    assert_one_line_error(*run_cli(capsys, "demo", "--scene", "no_such_scene"), "no_such_scene", "unknown scene key")


def test_untrusted_blend_runs_no_code(tmp_path):
    marker = tmp_path / "marker.txt"
    blend = blender_scenes.with_embedded_code(tmp_path / "trojan.blend", marker)
    out = tmp_path / "o"
    result = subprocess.run([sys.executable, "-m", "vf3d_assets.cli", "preprocess", str(blend), "--out", str(out),
                             "--width", "32", "--height", "24"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out / "meta.json").exists()
    assert not marker.exists() and not marker.with_name(marker.name + ".driver").exists()
    # The same file does run its code when auto-run is allowed: the test above could have failed.
    trusting = ("import bpy; bpy.context.preferences.filepaths.use_scripts_auto_execute = True; "
                f"bpy.ops.wm.open_mainfile(filepath={str(blend)!r}, use_scripts=True); bpy.context.scene.frame_set(2)")
    subprocess.run([sys.executable, "-c", trusting], capture_output=True, timeout=300, check=True)
    assert marker.exists()


def test_killed_render_leaves_no_half_written_output_and_reruns(tmp_path):
    blend = blender_scenes.dolly_over_plane(tmp_path / "slow.blend", frames=120, step=0.01)
    out = tmp_path / "guidance"
    command = [sys.executable, "-m", "vf3d_assets.cli", "preprocess", str(blend), "--out", str(out),
               "--width", "160", "--height", "120"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not any(len(list(t.glob("edges/*.png"))) >= 5 for t in tmp_path.glob(".tmp-*")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(tmp_path.glob(".tmp-guidance.*")), "the render was killed before it started writing"
    assert not out.exists()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(list((out / "edges").glob("*.png"))) == 120
    assert not list(tmp_path.glob(".tmp-guidance.*"))
