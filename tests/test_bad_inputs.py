"""Issue 19 (items 7-11 and the minor ones): inputs that passed the up-front checks and failed later, with a
traceback or silently. Each is one line `error: <file or argument>: <problem>` before any work starts."""

import json
import os
import stat
from pathlib import Path

import blender_scenes
import bpy
import numpy as np
import pytest
from conftest import assert_one_line_error
from PIL import Image

from vf3d.common import atomic
from vf3d.common.errors import VF3DInputError

W, H = 48, 32


def cli(capsys, *argv):
    """`vf3d` in-process, argparse's own exits included; (exit code, stderr)."""
    from vf3d_assets.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


def style_image(path, size=(64, 48)):
    Image.new("RGB", size, (120, 60, 30)).save(path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh working folder of the user's own (no test catalog), with nothing started."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("VF3D_HOME", str(folder))
    monkeypatch.delenv("VF3D_USER_CATALOG", raising=False)
    return folder


# --- 7: non-finite and non-numeric cameras ---------------------------------------------------------------------

def nan_camera_blend(path, what):
    """A 3-frame dolly whose frame 2 has a NaN camera x position (`location`) or focal length (`lens`)."""
    blender_scenes.dolly_over_plane(path, frames=3)
    camera = bpy.data.objects["Camera"]
    if what == "location":
        camera.location.x = float("nan")
        camera.keyframe_insert("location", frame=2)
    else:
        for frame, lens in ((1, 30.0), (2, float("nan")), (3, 30.0)):
            camera.data.lens = lens
            camera.data.keyframe_insert("lens", frame=frame)
    return blender_scenes.save(path)


@pytest.mark.parametrize("what, words", [("location", ["frame 2", "pose", "non-finite"]),
                                         ("lens", ["frame 2", "intrinsics", "non-finite"])])
def test_a_nan_in_a_blend_camera_is_refused_naming_the_frame(capsys, tmp_path, home, what, words):
    blend = nan_camera_blend(tmp_path / "nan.blend", what)
    assert_one_line_error(*cli(capsys, "preprocess", blend, "--out", tmp_path / "o", "--width", W, "--height", H),
                          "nan.blend", *words)
    assert not (tmp_path / "o").exists()
    style = style_image(tmp_path / "look.png")
    assert_one_line_error(*cli(capsys, "register", blend, "--style", style, "--width", 64, "--height", 48),
                          "nan.blend", *words)
    assert not (home / "catalog.json").exists()


def trajectory_file(tmp_path, **change):
    poses = [np.eye(4).tolist(), np.eye(4).tolist(), np.eye(4).tolist()]
    for i, pose in enumerate(poses):
        pose[0][3] = 0.1 * i
    data = {"width": 72, "height": 48, "fov_x_deg": 50, "camera_to_world": poses, **change}
    path = tmp_path / "traj.json"
    path.write_text(json.dumps(data).replace('"NaN!"', "NaN"))  # json.dumps writes float nan as NaN itself
    return path


def test_trajectory_entries_must_be_numbers_and_finite(capsys, shots, tmp_path):
    glb = shots / "export.glb"
    if not glb.exists():
        blender_scenes.export_glb_with_trajectory(blender_scenes.interpenetrating_boxes(shots / "export.blend"),
                                                  glb, shots / "export.json", 2)
    pose = np.eye(4).tolist()
    as_string = [[row[:] for row in pose] for _ in range(3)]
    as_string[2][1][3] = "1"
    as_bool = [[row[:] for row in pose] for _ in range(3)]
    as_bool[1][0][0] = True
    intrinsics = {"fx": 60, "fy": 60, "cx": 36, "cy": 24}
    cases = [
        ({"camera_to_world": as_string}, ["camera_to_world[2]", "frame 2", "row 1, column 3", "'1'", "not a number"]),
        ({"camera_to_world": as_bool}, ["camera_to_world[1]", "frame 1", "row 0, column 0", "True", "not a number"]),
        ({"fov_x_deg": None, "intrinsics": {**intrinsics, "fx": "60"}}, ["'intrinsics'", "fx", "'60'"]),
        ({"fov_x_deg": None, "intrinsics": {**intrinsics, "cy": True}}, ["'intrinsics'", "cy", "True"]),
        ({"fov_x_deg": None, "intrinsics": {**intrinsics, "fx": float("nan"), "fy": float("nan")}},
         ["'intrinsics'", "fx", "finite"]),
    ]
    for change, words in cases:
        path = trajectory_file(tmp_path, **change)
        if change.get("fov_x_deg", 0) is None:
            data = json.loads(path.read_text())
            del data["fov_x_deg"]
            path.write_text(json.dumps(data))
        assert_one_line_error(*cli(capsys, "preprocess", glb, "--trajectory", path, "--out", tmp_path / "o"),
                              "traj.json", *words)
    assert not (tmp_path / "o").exists()


# --- 8: a device that is not there ---------------------------------------------------------------------------

def test_a_device_that_is_not_there_is_refused(capsys, clean_env, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device in ("cuda:7", "cuda"):
        monkeypatch.setenv("VF3D_DEVICE", device)
        assert_one_line_error(*cli(capsys, "config"), "error: VF3D_DEVICE: ", f"'{device}'", "CUDA is not available")
    monkeypatch.setenv("VF3D_DEVICE", "mps")
    assert_one_line_error(*cli(capsys, "config"), "error: VF3D_DEVICE: ", "'mps'")
    # A machine with two GPUs: cuda:1 is there, cuda:7 is not.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("VF3D_DEVICE", "cuda:7")
    assert_one_line_error(*cli(capsys, "config"), "error: VF3D_DEVICE: ", "'cuda:7'", "2 CUDA device(s)")
    monkeypatch.setenv("VF3D_DEVICE", "cuda:1")
    assert cli(capsys, "config")[0] == 0
    # The same setting from the config file names the file.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("VF3D_DEVICE")
    (clean_env / "vf3d.toml").write_text('device = "cuda:7"\n')
    assert_one_line_error(*cli(capsys, "config"), f"error: {clean_env / 'vf3d.toml'}: ", "'cuda:7'")


# --- 9: a tiny style image, a key too long for a file name ---------------------------------------------------

def test_a_style_reference_smaller_than_the_minimum_is_refused_before_any_work(capsys, tmp_path, home, monkeypatch):
    from vf3d.common.limits import MIN_REFERENCE_SIDE, check_reference_image
    from vf3d.preprocess import guidance

    for size in [(1, 1), (MIN_REFERENCE_SIDE - 1, 400), (400, MIN_REFERENCE_SIDE - 1)]:
        with pytest.raises(VF3DInputError, match=f"{size[0]}x{size[1]}, too small: at least {MIN_REFERENCE_SIDE} px"):
            check_reference_image(style_image(tmp_path / "small.png", size))
    assert check_reference_image(style_image(tmp_path / "ok.png", (MIN_REFERENCE_SIDE, MIN_REFERENCE_SIDE)))
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    monkeypatch.setattr(guidance, "describe_shot", lambda *a, **k: pytest.fail("the shot was opened first"))
    assert_one_line_error(*cli(capsys, "register", blend, "--style", style_image(tmp_path / "dot.png", (1, 1))),
                          "dot.png", "1x1", "too small")
    assert not (home / "catalog.json").exists()


def test_the_smallest_reference_trains_every_crop():
    """The style LoRA's crops (16:9, 4:3, 1:1, own) of a reference of the minimum size are images the edge
    detector takes; a 1x1 reference's 16:9 crop is empty (OpenCV's assertion, minutes into a run)."""
    from vf3d.common.limits import MIN_REFERENCE_SIDE
    from vf3d.models.hed import ClassicalEdgeDetector
    from vf3d.sag.style_lora import ASPECTS, centre_crop

    detector = ClassicalEdgeDetector()
    for size in [(MIN_REFERENCE_SIDE, MIN_REFERENCE_SIDE), (MIN_REFERENCE_SIDE, 1000), (1000, MIN_REFERENCE_SIDE)]:
        for aspect in ASPECTS.values():
            crop = centre_crop(Image.new("RGB", size), aspect)
            assert min(crop.size) >= MIN_REFERENCE_SIDE * 9 // 16
            detector(np.asarray(crop))
    assert min(centre_crop(Image.new("RGB", (1, 1)), ASPECTS["16:9"]).size) == 0


def test_keys_are_checked_up_front_and_every_artifact_name_fits(capsys, tmp_path, home, monkeypatch):
    from vf3d.benchmark.user_catalog import MAX_KEY_LENGTH, ShotRequest, key_from_name
    from vf3d.preprocess import guidance

    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    style = style_image(tmp_path / "look.png")
    # A key taken by the benchmark names --key, not the catalog file.
    assert_one_line_error(*cli(capsys, "register", blend, "--style", style, "--key", "cottage", "--width", 64,
                               "--height", 48), "error: --key: ", "'cottage'", "benchmark")
    monkeypatch.setattr(guidance, "describe_shot", lambda *a, **k: pytest.fail("the shot was opened first"))
    for key, words in [("k" * 300, ["300 characters", f"at most {MAX_KEY_LENGTH}"]),
                       ("Bad Key", ["'Bad Key'", "lowercase"])]:
        assert_one_line_error(*cli(capsys, "register", blend, "--style", style, "--key", key), "error: --key: ", *words)
        assert_one_line_error(*cli(capsys, "run", blend, "--style", style, "--key", key), "error: --key: ", *words)
    assert not (home / "catalog.json").exists()
    # Keys made from long file names and post-prompts stay within the limit, and distinct.
    long_name = "a" * 300
    assert len(key_from_name(long_name)) == MAX_KEY_LENGTH
    request = ShotRequest(key_from_name(long_name), tmp_path / f"{long_name}.blend", tmp_path / f"{'b' * 300}.png",
                          post_prompt="in winter " * 10)
    plain = ShotRequest(request.key, request.source, request.reference)
    assert len(request.style_key) == MAX_KEY_LENGTH and request.style_key != plain.style_key
    assert ShotRequest("k", blend, style, post_prompt="winter").style_key == "look_winter"  # short keys unchanged
    # The longest artifact name: the temporary of a scene|style partition folder (`atomic_dir`), with the
    # longest host name (64 bytes) and process id (7 digits) in its owner tag.
    partition = f"{'s' * MAX_KEY_LENGTH}__{'t' * MAX_KEY_LENGTH}"  # ArtifactStore.path: '|' becomes '__'
    owner = f"{'h' * 64}-{4194304}"
    for name in (f".tmp-{partition}.{owner}.abcdefgh", f".tmp-{partition}.{owner}.old", f".tmp-{partition}.lock"):
        assert len(name.encode()) <= 255
        (tmp_path / name).mkdir()  # the file system takes it


# --- 10: a corrupt working-folder catalog --------------------------------------------------------------------

CORRUPT_CATALOGS = {
    "styles_not_a_list": b'{"scenes": [], "styles": 5, "shots": []}',
    "string_entries": b'{"scenes": ["x"], "styles": [], "shots": []}',
    "string_pairs": b'{"scenes": [], "styles": [], "shots": ["x|y"]}',
    "entry_without_key": b'{"scenes": [{"source": "/a.blend"}], "styles": [], "shots": []}',
    "pair_of_an_unknown_scene": b'{"scenes": [], "styles": [], "shots": [{"scene": "x", "style": "y"}]}',
    "garbage_bytes": b"\xff\xfe\x00\x81garbage",
    "not_an_object": b"[1, 2]",
}
COMMANDS = ["shots", "run", "register", "forget", "stale", "refresh", "demo", "ui"]


@pytest.mark.parametrize("corruption", sorted(CORRUPT_CATALOGS))
def test_a_corrupt_working_folder_catalog_is_one_line_in_every_command_and_never_overwritten(
        capsys, tmp_path, home, monkeypatch, corruption):
    import vf3d_assets.runner

    catalog = home / "catalog.json"
    catalog.write_bytes(CORRUPT_CATALOGS[corruption])
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    style = style_image(tmp_path / "look.png")
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("vf3d ui started dagster"))
    monkeypatch.setattr(vf3d_assets.runner, "run_stages", lambda *a, **k: pytest.fail("a run started"))
    for command in COMMANDS:
        argv = {"run": [blend, "--style", style], "register": [blend, "--style", style],
                "forget": ["x"]}.get(command, [])
        code, err = cli(capsys, command, *argv)
        assert_one_line_error(code, err, f"error: {catalog}: ")
        assert catalog.read_bytes() == CORRUPT_CATALOGS[corruption], command
    assert sorted(p.name for p in home.iterdir()) == ["catalog.json"]


def test_a_failed_registration_puts_the_catalog_back_byte_for_byte(capsys, tmp_path, home, monkeypatch):
    import vf3d_assets.cli

    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    style = style_image(tmp_path / "look.png")
    catalog = home / "catalog.json"
    mine = b'{"scenes": [],\r\n "styles": [],\r\n "shots": [], "note": "caf\xc3\xa9"}\r\n'  # CRLF, UTF-8
    catalog.write_bytes(mine)
    monkeypatch.setattr(vf3d_assets.cli, "_shot_plan", lambda *a: (_ for _ in ()).throw(
        VF3DInputError("ggi_weights", "stand-in for a failure after registering")))
    assert_one_line_error(*cli(capsys, "register", blend, "--style", style, "--width", 64, "--height", 48),
                          "stand-in")
    assert catalog.read_bytes() == mine


# --- 11: unwritable --out, a file as the add-on's --out, a fractional size -----------------------------------

def test_an_out_folder_vf3d_may_not_write_is_refused_before_rendering(capsys, tmp_path, monkeypatch):
    blend = blender_scenes.dolly_over_plane(tmp_path / "shot.blend", frames=2)
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    from vf3d.preprocess.blender import scene_io
    monkeypatch.setattr(scene_io, "load_shot", lambda *a, **k: pytest.fail("refused only after opening the shot"))
    real_access = os.access
    # root ignores permission bits: the kernel's answer for a user is stood in for, for this folder alone
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: (not (mode & os.W_OK and Path(path) == out)
                                                                 and real_access(path, mode)))
    assert_one_line_error(*cli(capsys, "preprocess", blend, "--out", out, "--width", W, "--height", H),
                          f"error: {out}: ", "permission denied")
    assert stat.S_IMODE(out.stat().st_mode) == 0o555 and not list(out.iterdir())
    assert not list(tmp_path.glob(".tmp-*"))
    out.chmod(0o755)


def test_the_addon_out_must_be_a_folder(capsys, tmp_path):
    plain = tmp_path / "plainfile.txt"
    plain.write_text("notes")
    assert_one_line_error(*cli(capsys, "blender-addon", "--out", plain), f"error: {plain}: ", "not a folder")
    assert_one_line_error(*cli(capsys, "blender-addon", "--out", plain / "sub"), f"error: {plain / 'sub'}: ")
    assert plain.read_text() == "notes" and sorted(p.name for p in tmp_path.iterdir()) == ["plainfile.txt"]


@pytest.mark.parametrize("argv, words", [
    (["preprocess", "shot.blend", "--out", "o", "--width", "64.5"], ["error: --width: ", "'64.5'", "whole number"]),
    (["run", "shot.blend", "--style", "s.png", "--height", "abc"], ["error: --height: ", "'abc'"]),
    (["ui", "--port", "-3"], ["error: --port: ", "'-3'"]),
    (["demo", "--profile", "huge"], ["error: --profile: ", "'huge'"]),
    (["preprocess", "shot.blend"], ["error: ", "--out"]),
    (["frobnicate"], ["error: ", "frobnicate"]),
])
def test_bad_arguments_are_one_line(capsys, monkeypatch, argv, words):
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("vf3d ui started dagster"))
    assert_one_line_error(*cli(capsys, *argv), *words)


def test_help_still_prints_usage(capsys):
    from vf3d_assets.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["preprocess", "--help"])
    assert exit_.value.code == 0 and "--width" in capsys.readouterr().out


# --- minor: Blender's own messages, the output folder's mode -------------------------------------------------

def test_blenders_own_messages_stay_out_of_the_terminal_and_outputs_get_the_usual_mode(capfd, tmp_path):
    from vf3d_assets.cli import main

    blend = blender_scenes.with_embedded_code(tmp_path / "driver.blend", tmp_path / "marker.txt")
    out = tmp_path / "o"
    out.mkdir()  # an empty folder the user made
    capfd.readouterr()
    assert main(["preprocess", str(blend), "--out", str(out), "--width", "32", "--height", "24"]) == 0
    captured = capfd.readouterr()
    assert captured.err == "" and "PyDriver" not in captured.out, captured
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert main(["preprocess", str(blend), "--out", str(out), "--width", "32", "--height", "24", "--verbose"]) == 0
    assert "PyDriver" in capfd.readouterr().err  # asked for, Blender's text is there


def test_atomic_outputs_get_the_mode_of_a_folder_made_with_mkdir_or_a_file_made_with_open(tmp_path):
    umask = os.umask(0o027)
    try:
        for final in (tmp_path / "new", tmp_path / "empty"):
            if final.name == "empty":
                final.mkdir(mode=0o700)
            with atomic.atomic_dir(final) as tmp:
                (tmp / "a.txt").write_text("a")
            assert stat.S_IMODE(final.stat().st_mode) == 0o750, final
        atomic.write_text_atomic(tmp_path / "note.txt", "a")
        assert stat.S_IMODE((tmp_path / "note.txt").stat().st_mode) == 0o640  # as open() makes it, not 0600
    finally:
        os.umask(umask)
