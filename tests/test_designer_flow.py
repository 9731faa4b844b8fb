"""A designer's way in: `vf3d run` for their own shot (registered in the working folder's catalog, rerun only
what an edit made stale), `vf3d shots`, `vf3d forget`, readable progress (tiny, CPU, real subprocesses)."""

import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import blender_scenes
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image
from rich.console import Console

from vf3d_assets.progress import StageDisplay, step_progress


def vf3d(home, *argv, check=True):
    env = {**os.environ, "VF3D_HOME": str(home), "VF3D_PROFILE": "tiny"}
    env.pop("VF3D_USER_CATALOG", None)  # the working folder's catalog alone must be enough
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run([sys.executable, "-m", "vf3d_assets.cli", *map(str, argv)], capture_output=True,
                            text=True, env=env, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def stage_lines(stdout):
    return {line.split(":")[0]: line.split(": ")[1].split(" (")[0] for line in stdout.splitlines()
            if line.endswith(" s)") and ": " in line}


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    return blender_scenes.designer_shot(tmp_path_factory.mktemp("designer"), "my shot.blend", "blue.png")


def test_run_registers_renders_and_reruns_only_what_an_edit_made_stale(shot, tmp_path):
    home = tmp_path / "home"
    first = vf3d(home, "run", shot / "my shot.blend", "--style", shot / "blue.png", "--width", 64, "--height", 48)
    assert "DEBUG" not in first.stdout + first.stderr and len(first.stdout.splitlines()) < 20
    ran = stage_lines(first.stdout)
    assert set(ran) == {"scene[my_shot]", "guidance[my_shot]", "warped_noise[my_shot]", "style_lora[blue]",
                        "ggi_training_set", "ggi_weights", "anchors[my_shot|blue]", "video[my_shot|blue]",
                        "metrics[my_shot|blue]"} and set(ran.values()) == {"ran"}
    mp4 = home / "artifacts" / "video" / "my_shot__blue" / "video.mp4"
    lines = first.stdout.strip().splitlines()
    assert lines[-2] == f"the video: {mp4}" and mp4.is_file()
    page = home / "artifacts" / "shot_page" / "my_shot__blue" / "index.html"  # its page: video, anchors, edges, numbers
    assert lines[-1] == f"the shot's page: {page.as_uri()}" and "../../video/my_shot__blue/video.mp4" in page.read_text()
    catalog = json.loads((home / "catalog.json").read_text())
    assert catalog["shots"] == [{"scene": "my_shot", "style": "blue"}]
    # the UI and every later command find the shot without any environment variable but VF3D_HOME
    keys = vf3d(home, "shots").stdout
    assert "my_shot" in keys and f"video done: {mp4}" in keys

    Image.new("RGB", (64, 48), (200, 40, 40)).save(shot / "blue.png")  # the designer edits the reference
    second = vf3d(home, "run", shot / "my shot.blend", "--style", shot / "blue.png", "--width", 64, "--height", 48,
                  "--verbose")
    assert "DEBUG" in second.stdout + second.stderr  # the full event log only on request
    ran = stage_lines(second.stdout)
    assert {k for k, v in ran.items() if v == "ran"} == {"style_lora[blue]", "anchors[my_shot|blue]",
                                                         "video[my_shot|blue]", "metrics[my_shot|blue]"}
    assert ran["guidance[my_shot]"] == "up to date" and ran["ggi_weights"] == "up to date"

    # another file under the same key asks for --replace; the catalog stays as it was
    other = shot / "other.blend"
    other.write_bytes((shot / "my shot.blend").read_bytes())
    before = (home / "catalog.json").read_text()
    refused = vf3d(home, "run", other, "--key", "my_shot", "--style", shot / "blue.png", "--width", 64,
                   "--height", 48, check=False)
    assert refused.returncode == 2 and "--replace" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert (home / "catalog.json").read_text() == before

    forgot = vf3d(home, "forget", "my_shot").stdout
    assert "forgot shot my_shot and style(s) blue" in forgot and mp4.is_file()  # its files stay
    assert "no shots registered" in vf3d(home, "shots").stdout


def test_bad_input_is_one_line_before_anything_is_registered(shot, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VF3D_HOME", str(tmp_path / "home"))
    code, err = run_cli(capsys, "run", shot / "my shot.blend", "--style", shot / "missing.png")
    assert_one_line_error(code, err, "missing.png", "not found")
    code, err = run_cli(capsys, "run", shot / "blue.png", "--style", shot / "blue.png")
    assert_one_line_error(code, err, "blue.png", "not a shot file")
    code, err = run_cli(capsys, "forget", "nothing")
    assert_one_line_error(code, err, "catalog.json", "no registered shot 'nothing'")
    assert not (tmp_path / "home" / "catalog.json").exists()


def test_a_failed_run_leaves_the_catalog_as_it_was(shot, tmp_path, capsys, monkeypatch):
    import vf3d_assets.runner as runner

    def fail(stages, *args, **kwargs):
        raise runner.StageFailed(stages[-1], "RuntimeError: out of memory", "0123456789")

    monkeypatch.setenv("VF3D_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "run_stages", fail)
    code, err = run_cli(capsys, "run", shot / "my shot.blend", "--style", shot / "blue.png", "--width", "64",
                        "--height", "48")
    assert code == 1 and err.count("\n") == 0 and "metrics[my_shot|blue] failed: RuntimeError: out of memory" in err
    assert not (tmp_path / "home" / "catalog.json").exists()


def test_progress_shows_a_stages_own_steps_and_a_summary():
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    logged = []
    context = SimpleNamespace(log=SimpleNamespace(info=logged.append))
    with StageDisplay(console, verbose=True) as display:
        with display.stage("style_lora[blue]") as finish:
            report = step_progress(context, "LoRA steps", every=2)
            for step in range(1, 4):
                report(step, 3)
            task = display.progress.tasks[0]
            assert (task.completed, task.total, task.fields["unit"]) == (3, 3, "LoRA steps")
            finish("ran")
        with display.stage("video[a|blue]") as finish:
            segments, denoising = step_progress(context, "segments"), step_progress(context, "denoising steps", 0)
            for segment in range(1, 3):
                for step in range(1, 31):
                    denoising(step, 30)
                segments(segment, 2)
            video, inner = display.progress.tasks[1:]  # the segments' line, and the steps of the current one
            assert (video.completed, video.fields["unit"], inner.completed, inner.fields["unit"]) == \
                (2, "segments", 30, "denoising steps")
            finish("ran")
        assert len(display.progress.tasks) == 2  # the inner line goes with its stage
        with display.stage("guidance[a]") as finish:
            finish("up to date")
    display.print_summary()
    # the run log gets every `every`-th step and the last; denoising steps only reach the terminal
    assert logged == ["LoRA steps 2/3", "LoRA steps 3/3", "segments 1/2", "segments 2/2"]
    assert [s[:2] for s in display.summary] == [("style_lora[blue]", "ran"), ("video[a|blue]", "ran"),
                                                ("guidance[a]", "up to date")]
    assert "2 stage(s) ran, 1 up to date" in console.file.getvalue()


def test_the_addon_zip_replaces_only_its_own_earlier_zip(tmp_path, capsys):
    import zipfile

    code, _ = run_cli(capsys, "blender-addon", "--out", tmp_path)
    addon = tmp_path / "vf3d_render.zip"
    assert code == 0 and zipfile.ZipFile(addon).namelist() == ["vf3d_render/__init__.py"]
    assert "bl_info" in zipfile.ZipFile(addon).read("vf3d_render/__init__.py").decode()
    code, _ = run_cli(capsys, "blender-addon", "--out", tmp_path)  # its own earlier zip: replaced
    assert code == 0
    addon.write_bytes(b"someone's notes")
    code, err = run_cli(capsys, "blender-addon", "--out", tmp_path)
    assert_one_line_error(code, err, "vf3d_render.zip", "not a vf3d add-on zip")
    assert addon.read_bytes() == b"someone's notes"


def test_run_takes_a_mesh_with_a_3_2_trajectory_through_to_the_mp4(shot, tmp_path):
    """The README's example: a .glb with a 720x480 trajectory, run at another 3:2 size (the up-front check used to
    load every shot at 64x48 and refused it; GGI's tiny training renders it larger and centre-crops)."""
    from vf3d.common.video_io import read_mp4

    glb, trajectory = blender_scenes.export_glb_with_trajectory(shot / "my shot.blend", tmp_path / "street.glb",
                                                                tmp_path / "path.json", 8)
    assert json.loads(trajectory.read_text())["width"] / json.loads(trajectory.read_text())["height"] == 1.5
    home = tmp_path / "home"
    vf3d(home, "run", glb, "--trajectory", trajectory, "--style", shot / "blue.png", "--key", "wide", "--width", 96,
         "--height", 64)
    frames = read_mp4(home / "artifacts" / "video" / "wide__blue" / "video.mp4")
    assert len(frames) == 8 and frames[0].shape == (64, 96, 3)


def test_post_prompt_variants_reuse_the_lora_and_a_schedule_changes_the_style_over_time(shot, tmp_path):
    """Paper Sec. 3.2 ("Style Variation": post-prompting avoids training additional LoRAs) and Fig. 8 (a post-prompt
    per anchor, "we intentionally omit the replacement operation")."""
    Image.new("RGB", (64, 48), (90, 160, 60)).save(tmp_path / "look.png")
    home, size = tmp_path / "home", ("--width", 64, "--height", 48)
    vf3d(home, "run", shot / "my shot.blend", "--style", tmp_path / "look.png", *size)
    over_time = vf3d(home, "run", shot / "my shot.blend", "--style", tmp_path / "look.png", "--post-prompt", "summer",
                     "--post-prompt", "winter", *size)
    assert stage_lines(over_time.stdout)["style_lora[look_summer_to_winter]"] == "ran"
    loras = home / "artifacts" / "style_lora"
    files = sorted(p.name for p in (loras / "look").iterdir() if p.suffix == ".safetensors")
    assert files and all((loras / "look" / f).stat().st_ino == (loras / "look_summer_to_winter" / f).stat().st_ino
                         for f in files)  # one training, linked by both styles
    trained = [p for p in (home / "artifacts" / "style_lora_shared").iterdir() if not p.name.startswith(".tmp-")]
    assert len(trained) == 1
    record = json.loads((home / "artifacts" / "anchors" / "my_shot__look_summer_to_winter" / "anchors.json").read_text())
    assert [a["prompt"] for a in record["anchors"]] == ["summer", "winter"] and record["settings"]["replacement"] is False
    plain = json.loads((home / "artifacts" / "anchors" / "my_shot__look" / "anchors.json").read_text())
    assert plain["settings"]["replacement"] is True
