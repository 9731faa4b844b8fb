"""A multi-GPU workstation, live: the real daemon and run queue (`vf3d ui`) with two devices (CPU slots,
VF3D_GPUS=cpu,cpu) backfill four scene x style partitions of the tiny profile.

From the device each GPU step leased (its run log: "leased device ..." / "released device ...", and the
`device.slot` of its metadata): at most two GPU steps ran at once, never two on one device, both devices were
used, and everything finished. One `anchors` step is killed with SIGKILL while it holds its device: the device
is free at once, the run fails visibly, and a retry succeeds with a complete artifact and no leftovers.
"""

import json
import os
import signal
import time

import blender_scenes
import pytest
from PIL import Image
from ui_server import backfill, backfill_status, graphql, running_ui

from resources.devices import Device, holder

SCENES, STYLES = ("a", "b"), ("x", "y")
PAIRS = [f"{scene}|{style}" for scene in SCENES for style in STYLES]
DEVICES = (Device("cpu#0"), Device("cpu#1"))
GPU_ASSETS = ("style_lora", "anchors")
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
    killed = {}

    def kill_an_anchors_step_holding_its_device():
        if killed:
            return
        for device in DEVICES:
            held = holder(home, device)
            if not held or not held.get("pid"):
                continue
            run = graphql(url, RUN, {"id": held["owner"].split()[1]})["runOrError"]
            if ["anchors"] in [a["path"] for a in run["assetSelection"] or []]:
                os.kill(held["pid"], signal.SIGKILL)
                killed.update(device=device, run=held["owner"].split()[1], at=time.time(),
                              partition={t["key"]: t["value"] for t in run["tags"]}["dagster/partition"])
                deadline = time.time() + 10  # the kernel drops the flock with the process
                while holder(home, device) is not None and time.time() < deadline:
                    time.sleep(0.05)
                killed["free_after_kill"] = holder(home, device) is None
                return

    first = _wait(url, backfill(url, {"scene": list(SCENES), "guidance": list(SCENES), "style_lora": list(STYLES),
                                      "anchors": PAIRS}), kill_an_anchors_step_holding_its_device)
    assert killed, "no anchors step was seen holding a device"
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
    gpu_steps = [i for i in intervals if i[3] in GPU_ASSETS]
    assert len(gpu_steps) == 2 + 4 + 1  # two LoRAs, four anchors, the retried one
    assert {i[0] for i in gpu_steps} == {d.name for d in DEVICES}  # the second device only when the first was busy
    instants = sorted({t for i in gpu_steps for t in i[1:3]})
    busiest = max(sum(start <= t < end for _, start, end, _ in gpu_steps) for t in instants)
    assert busiest <= 2  # never more GPU steps at once than devices
    for device in DEVICES:  # never two steps on one device at once
        mine = sorted((start, end) for name, start, end, _ in gpu_steps if name == device.name)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(mine, mine[1:])), mine
    # and each step's metadata names the device it leased
    for asset, keys in (("anchors", PAIRS), ("style_lora", list(STYLES))):
        rows = graphql(url, '{ assetOrError(assetKey: {path: ["%s"]}) { ... on Asset { assetMaterializations('
                            'limit: 20) { partition metadataEntries { label ... on JsonMetadataEntry { jsonString } }'
                            ' } } } }' % asset)["assetOrError"]["assetMaterializations"]
        slots = {row["partition"]: json.loads(next(e["jsonString"] for e in row["metadataEntries"]
                                                   if e["label"] == "device"))["slot"] for row in rows}
        assert set(slots) == set(keys) and set(slots.values()) <= {d.name for d in DEVICES}
