"""A multi-GPU workstation, live: the real daemon and run queue (`vf3d ui`) with two devices (CPU slots,
VF3D_GPUS=cpu,cpu) backfill four scene x style partitions of the tiny profile (their anchor views; the shots'
guidance and the styles' LoRAs are made first by `vf3d_assets.runner` in one process, as `vf3d run` would).

From the device each GPU step leased (its run log: "leased device ..." / "released device ...", and the
`device.slot` of its metadata): at most two GPU steps ran at once, never two on one device, both devices were
used, and everything finished. One `anchors` step is paused (SIGSTOP) while it holds its device, so that
another surely runs on the other device beside it, then killed with SIGKILL: its device is free at once, its run
fails visibly, and a retry succeeds with a complete artifact and no leftovers.
"""

import json
import os
import signal
import subprocess
import sys
import time

import blender_scenes
import pytest
from PIL import Image
from ui_server import backfill, backfill_status, graphql, running_ui

from resources.devices import Device, holder

SCENES, STYLES = ("a", "b"), ("x", "y")
PAIRS = [f"{scene}|{style}" for scene in SCENES for style in STYLES]
DEVICES = (Device("cpu#0"), Device("cpu#1"))
PAUSE_LIMIT = 180
"""Seconds a paused step may wait for another step to lease the other device (the others need about 30 s)."""
UPSTREAM = """
from vf3d_assets.assets import ALL_ASSETS
from vf3d_assets.definitions import defs
from vf3d_assets.instance import open_instance
from vf3d_assets.progress import StageDisplay
from vf3d_assets.runner import Stage, run_stages

stages = [Stage(asset, scene) for scene in {scenes!r} for asset in ("scene", "guidance")]
stages += [Stage("style_lora", style) for style in {styles!r}]
with StageDisplay() as display:
    run_stages(stages, open_instance(), ALL_ASSETS, defs.resources, display)
"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status assetSelection { path }
  tags { key value } } } }"""
LOGS = """query Logs($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  __typename ... on MessageEvent { message timestamp stepKey } } } } }"""


@pytest.fixture(scope="module")
def workstation(tmp_path_factory):
    """A working folder whose catalog has two small shots and two styles, and the UI serving it."""
    folder = tmp_path_factory.mktemp("workstation")
    scenes = []
    for i, key in enumerate(SCENES):
        blender_scenes.dolly_over_plane(folder / f"{key}.blend", frames=6, step=0.05 * (i + 1), occluder=True)
        scenes.append({"key": key, "source": f"{key}.blend"})
    styles = []
    for key, colour in zip(STYLES, ((30, 120, 200), (200, 80, 30))):
        Image.new("RGB", (64, 48), colour).save(folder / f"{key}.png")
        styles.append({"key": key, "reference": f"{key}.png", "identifier": f"a scene in {key} style"})
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps({"render": {"width": 64, "height": 48}, "scenes": scenes, "styles": styles}))
    home = folder / "home"
    env = {**os.environ, "VF3D_HOME": str(home), "VF3D_USER_CATALOG": str(catalog), "VF3D_GPUS": "cpu,cpu",
           "VF3D_PROFILE": "tiny"}
    env.pop("DAGSTER_HOME", None)
    upstream = subprocess.run([sys.executable, "-c", UPSTREAM.format(scenes=SCENES, styles=STYLES)], env=env,
                              capture_output=True, text=True, timeout=900)
    assert upstream.returncode == 0 and upstream.stdout.count(": ran (") == 6, upstream.stdout + upstream.stderr
    with running_ui(env, folder / "ui.log", {"anchors", "style_lora"}) as url:
        yield url, home


def _wait(url, backfill_id, watch=None, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = backfill_status(url, backfill_id)
        if status["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return status
        if watch is not None:
            watch()
        time.sleep(0.2)
    raise AssertionError(f"backfill {backfill_id} did not finish in {timeout} s: {status}")


def _lease_intervals(url, run_ids, ended_at):
    """(device, start, end, step) for every lease in the runs' logs; a lease never released ends with its run."""
    intervals = []
    for run_id in run_ids:
        events = graphql(url, LOGS, {"id": run_id})["logsForRun"]["events"]
        open_leases = {}
        for event in events:
            message, step = event.get("message") or "", event.get("stepKey")
            if message.startswith("leased device "):
                open_leases[step] = (message.removeprefix("leased device "), float(event["timestamp"]) / 1000)
            elif message.startswith("released device "):
                device, start = open_leases.pop(step)
                intervals.append((device, start, float(event["timestamp"]) / 1000, step))
        intervals += [(device, start, ended_at, step) for step, (device, start) in open_leases.items()]
    return intervals


def test_two_devices_run_two_gpu_steps_at_once_and_survive_a_killed_step(workstation):
    url, home = workstation
    stopped, killed = {}, {}

    def stop_one_step_then_kill_it_once_the_other_device_is_busy():
        """The first step seen holding a device is paused (SIGSTOP) so that two surely overlap; once a second
        step holds the other device, the paused one is killed with SIGKILL, mid-run, still holding its device.
        Every step of this backfill is an `anchors` step."""
        if killed:
            return
        held = {device: holder(home, device) for device in DEVICES}
        held = {device: h for device, h in held.items() if h and h.get("pid")}
        if not stopped:
            if held:
                device, h = next(iter(held.items()))
                os.kill(h["pid"], signal.SIGSTOP)
                stopped.update(device=device, pid=h["pid"], run=h["owner"].split()[1], at=time.time())
            return
        if not any(device != stopped["device"] for device in held):
            if time.time() - stopped["at"] > PAUSE_LIMIT:  # fail now, not at the backfill's timeout
                os.kill(stopped["pid"], signal.SIGCONT)
                raise AssertionError(f"while a step held {stopped['device'].name} (paused), no other step held "
                                     f"the other device within {PAUSE_LIMIT} s: {held}")
            return
        # two GPU steps at once, one per device: kill the paused one, mid-run, holding its device
        os.kill(stopped["pid"], signal.SIGKILL)
        run = graphql(url, RUN, {"id": stopped["run"]})["runOrError"]
        killed.update(stopped, at=time.time(),
                      partition={t["key"]: t["value"] for t in run["tags"]}["dagster/partition"])
        deadline = time.time() + 10  # the kernel drops the flock with the process
        while holder(home, stopped["device"]) is not None and time.time() < deadline:
            time.sleep(0.05)
        killed["free_after_kill"] = holder(home, stopped["device"]) is None

    first = _wait(url, backfill(url, {"anchors": PAIRS}), stop_one_step_then_kill_it_once_the_other_device_is_busy)
    assert killed, f"no second step held the other device while one was paused ({stopped})"
    assert killed["free_after_kill"]  # released at once: a killed step cannot keep its device
    assert first["status"] == "COMPLETED_FAILED"  # the killed partition failed visibly, the others finished
    runs = {r["runId"]: r["status"] for r in first["runs"]}
    assert runs[killed["run"]] == "FAILURE" and list(runs.values()).count("FAILURE") == 1
    artifact = home / "artifacts" / "anchors" / killed["partition"].replace("|", "__")
    assert not artifact.exists()  # nothing half-written where the killed step was writing

    retry = _wait(url, backfill(url, {"anchors": [killed["partition"]]}))
    assert retry["status"] == "COMPLETED_SUCCESS"
    assert (artifact / ".vf3d-output").is_file() and len(list((artifact / "anchors").glob("*.png"))) == 2
    assert [p.name for p in artifact.parent.iterdir() if p.name.startswith(".tmp-")] == []  # no leftovers

    all_runs = list(runs) + [r["runId"] for r in retry["runs"]]
    intervals = _lease_intervals(url, all_runs, ended_at=killed["at"])
    gpu_steps = [i for i in intervals if i[3] == "anchors"]
    assert len(gpu_steps) == 4 + 1  # four partitions, and the retried one
    assert {i[0] for i in gpu_steps} == {d.name for d in DEVICES}
    instants = sorted({t for i in gpu_steps for t in i[1:3]})
    busiest = max(sum(start <= t < end for _, start, end, _ in gpu_steps) for t in instants)
    assert busiest <= 2  # never more GPU steps at once than devices
    for device in DEVICES:  # never two steps on one device at once
        mine = sorted((start, end) for name, start, end, _ in gpu_steps if name == device.name)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(mine, mine[1:])), mine
    # and each step's metadata names the device it leased
    rows = graphql(url, '{ assetOrError(assetKey: {path: ["anchors"]}) { ... on Asset { assetMaterializations('
                        'limit: 20) { runId partition metadataEntries { label ... on JsonMetadataEntry { jsonString }'
                        ' } } } } }')["assetOrError"]["assetMaterializations"]
    leased = {run_id: device for run_id in all_runs for device, _, _, step in _lease_intervals(url, [run_id], 0)
              if step == "anchors"}
    for row in rows:
        slot = json.loads(next(e["jsonString"] for e in row["metadataEntries"] if e["label"] == "device"))["slot"]
        assert slot == leased[row["runId"]], (row, leased)
    assert {row["partition"] for row in rows} == set(PAIRS)
