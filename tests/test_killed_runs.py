"""A killed run never blocks the next; a waiting command says what it waits for and Ctrl-C stops it; SIGTERM
removes this process's temporaries; a camera range beyond the frame limit is refused before any work.

Tested like a user: real `vf3d` processes on a real shot, only the vf3d process killed (not its group)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import blender_scenes
import bpy
import pytest
from conftest import assert_one_line_error, run_cli
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from resources.devices import Device, holder
from vf3d.common.limits import MAX_FRAMES, MAX_FRAMES_ENV

POLL_S = 0.01


def vf3d_env(home: Path, **extra) -> dict:
    env = {**os.environ, "VF3D_HOME": str(home), "VF3D_PROFILE": "tiny", **extra}
    env.pop("VF3D_USER_CATALOG", None)
    env.pop("DAGSTER_HOME", None)
    return env


HANG_GUARD_S = float(os.environ.get("VF3D_TEST_HANG_GUARD_S", 600))
"""Only a guard against a hang (a broken fix): every wait below ends on its condition long before."""


class Vf3d:
    """A `vf3d` process whose stderr lines are collected as they come."""

    def __init__(self, home: Path, *argv, **extra):
        self.process = subprocess.Popen([sys.executable, "-m", "vf3d_assets.cli", *map(str, argv)],
                                        env=vf3d_env(home, **extra), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.pid, self.lines = self.process.pid, []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stderr.readline, "")),
                                        daemon=True)
        self._reader.start()

    def said(self, words: str) -> str | None:
        return next((line for line in list(self.lines) if words in line), None)

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(timeout=HANG_GUARD_S)
        self._reader.join()
        return code, "".join(self.lines)


def wait_until(condition, vf3d: Vf3d, what: str):
    """Poll `condition` until it returns something truthy; fail at once if the process exits first."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        found = condition()
        if found:
            return found
        if vf3d.process.poll() is not None:
            code, err = vf3d.finish()
            pytest.fail(f"the process exited ({code}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            vf3d.process.kill()
            pytest.fail(f"hung: {what} did not happen; stderr so far:\n{''.join(vf3d.lines)[-3000:]}")
        time.sleep(POLL_S)


def open_home(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster_home")))


def stop_inside_a_pool_step(home: Path, process: Vf3d) -> str:
    """SIGSTOP the vf3d process while one of its steps holds the `gpu` pool's slot; returns that run's id."""
    instance = None

    def holding():
        nonlocal instance
        who = holder(home, Device("cpu#0"))  # the device lease names the run (taken when its resources start)
        if not who or who.get("pid") != process.pid:
            return None
        instance = instance or open_home(home)
        run_id = who["owner"].split()[1]
        return run_id if run_id in instance.event_log_storage.get_concurrency_info("gpu").active_run_ids else None

    run_id = wait_until(holding, process, "one of its steps held the gpu pool's slot")
    os.kill(process.pid, signal.SIGSTOP)
    return run_id


def instance_state(home: Path) -> dict:
    """Run statuses and `gpu` pool claims of the instance."""
    instance = open_home(home)
    info = instance.event_log_storage.get_concurrency_info("gpu")
    return {"runs": {r.run_id: r.status.value for r in instance.get_runs()},
            "claimed": [s.run_id for s in info.claimed_slots], "pending": [p.run_id for p in info.pending_steps]}


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> Path:
    return blender_scenes.designer_shot(tmp_path_factory.mktemp("killed"))


def test_a_killed_run_never_blocks_the_next(shot, tmp_path):
    home = tmp_path / "home"
    run = ("run", shot / "shot.blend", "--style", shot / "look.png", "--width", 64, "--height", 48)
    first = Vf3d(home, *run, "--key", "kk")
    killed_run = stop_inside_a_pool_step(home, first)  # alive but frozen inside a step holding the pool's slot

    # another key meanwhile waits for the live holder, says what for, and Ctrl-C stops it at once
    second = Vf3d(home, *run, "--key", "other")
    waiting = wait_until(lambda: second.said("waits for a slot"), second, "the second run said it waits")
    assert "'gpu' pool" in waiting and f"run {killed_run[:8]} (pid {first.pid})" in waiting and "Ctrl-C" in waiting
    second.process.send_signal(signal.SIGINT)
    assert second.finish()[0] == 130
    assert {"scene": "other", "style": "look"} not in json.loads((home / "catalog.json").read_text())["shots"]

    os.kill(first.pid, signal.SIGKILL)  # the vf3d process alone, not its group
    first.finish()
    state = instance_state(home)
    assert state["runs"][killed_run] == "STARTED" and killed_run in state["claimed"]  # stuck, as reported
    assert json.loads((home / "catalog.json").read_text())["shots"] == [{"scene": "kk", "style": "look"}]
    shots = subprocess.run([sys.executable, "-m", "vf3d_assets.cli", "shots"], env=vf3d_env(home),
                           capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert "no shots registered" in shots.stdout and "a killed `vf3d run`" in shots.stderr  # its registration undone

    rerun = Vf3d(home, *run, "--key", "kk")
    wait_until(lambda: rerun.process.poll() is not None or rerun.said("waits for a slot"), rerun,
               "the rerun finished or waited")
    if rerun.said("waits for a slot"):
        rerun.process.kill()
        pytest.fail(f"the rerun waits for the dead run: {rerun.said('waits for a slot')}")
    code, err = rerun.finish()
    assert code == 0, err[-3000:]
    assert f"run {killed_run[:8]} (pid {first.pid}) died without finishing" in err
    assert (home / "artifacts" / "video" / "kk__look" / "video.mp4").is_file()
    state = instance_state(home)
    assert state["runs"][killed_run] == "FAILURE"
    assert "STARTED" not in state["runs"].values() and not state["claimed"] and not state["pending"]
    assert not [p for p in (home / "artifacts").rglob(".tmp-*")], "the killed run's temporaries were cleaned"


@pytest.fixture(scope="module")
def long_shot(shot) -> Path:
    return blender_scenes.dolly_over_plane(shot / "long.blend", frames=40, step=0.01, occluder=True)


def test_sigterm_removes_this_runs_temporaries(long_shot, tmp_path):
    scratch = tmp_path / "system-tmp"  # Blender's own temporary folder goes here too
    scratch.mkdir()
    out = tmp_path / "guidance"
    process = Vf3d(tmp_path / "home", "preprocess", long_shot, "--out", out, "--width", 720, "--height", 480,
                   TMPDIR=str(scratch))
    wait_until(lambda: len(list(tmp_path.glob(".tmp-guidance.*/edges/*.png"))) >= 2, process,
               "two frames were rendered")
    process.process.send_signal(signal.SIGTERM)
    code, err = process.finish()
    assert code == 130 and err.strip() == "vf3d: interrupted; this run's temporaries were removed", err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*")) and not list(scratch.iterdir())


def _frame_range(path: Path, frame_end: int) -> Path:
    blender_scenes.dolly_over_plane(path, frames=3)
    bpy.context.scene.frame_end = frame_end
    return blender_scenes.save(path)


def test_a_camera_range_beyond_the_frame_limit_is_refused_up_front(capsys, shot, tmp_path, monkeypatch):
    blend = _frame_range(shot / "huge.blend", 100_000)
    assert_one_line_error(*run_cli(capsys, "preprocess", blend, "--out", tmp_path / "o"), str(blend),
                          "100000 frames", f"limit of {MAX_FRAMES}", MAX_FRAMES_ENV)
    assert not (tmp_path / "o").exists()
    assert_one_line_error(*run_cli(capsys, "run", blend, "--style", shot / "look.png"), "100000 frames")

    monkeypatch.setenv(MAX_FRAMES_ENV, "2")  # the limit is overridable, for JSON trajectories too
    three = shot / "shot.blend"
    assert_one_line_error(*run_cli(capsys, "preprocess", three, "--out", tmp_path / "o"), "8 frames", "limit of 2")
    glb, traj = blender_scenes.export_glb_with_trajectory(three, tmp_path / "m.glb", tmp_path / "path.json", 3)
    assert_one_line_error(*run_cli(capsys, "preprocess", glb, "--trajectory", traj, "--out", tmp_path / "o"),
                          str(traj), "3 frames", "limit of 2")
    monkeypatch.setenv(MAX_FRAMES_ENV, "many")
    assert_one_line_error(*run_cli(capsys, "preprocess", three, "--out", tmp_path / "o"), MAX_FRAMES_ENV, "'many'")
