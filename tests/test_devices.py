"""A multi-GPU workstation: the deployment's devices, one lease per GPU step, the `gpu` pool sized to them."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from dagster import build_init_resource_context, instance_for_test

from resources.devices import Device, holder, lease_device, parse_devices
from resources.gpu import GPU, GPU_POOL


@pytest.mark.parametrize("value, cuda, names", [
    ("auto", 0, ["cpu#0"]),  # no CUDA: one CPU slot
    ("", 3, ["cuda:0", "cuda:1", "cuda:2"]),  # every visible CUDA device
    ("0,2", 4, ["cuda:0", "cuda:2"]),
    ("cuda:1", 2, ["cuda:1"]),
    ("cpu,cpu", 0, ["cpu#0", "cpu#1"]),
])
def test_the_deployment_names_its_devices(value, cuda, names):
    assert [d.name for d in parse_devices(value, cuda)] == names


@pytest.mark.parametrize("value, problem", [("0,0", "named twice"), ("4", "does not exist"),
                                            ("gpu0", "is not a device")])
def test_a_bad_device_list_is_one_line(value, problem):
    with pytest.raises(ValueError, match=problem):
        parse_devices(value, 2)


def test_leases_take_free_devices_and_wait_when_all_are_busy(tmp_path):
    devices = parse_devices("cpu,cpu", 0)
    waits = []
    with lease_device(devices, tmp_path, "a") as first, lease_device(devices, tmp_path, "b") as second:
        assert {first.name, second.name} == {"cpu#0", "cpu#1"}
        assert holder(tmp_path, first)["owner"] == "a" and holder(tmp_path, first)["pid"] == os.getpid()
        got = []
        third = threading.Thread(target=lambda: got.append(_lease_once(devices, tmp_path, waits)))
        third.start()
        time.sleep(1.5)
        assert got == [] and waits == ["all 2 device(s) are busy; waiting for one to be free"]
    third.join(timeout=10)
    assert got and got[0] in ("cpu#0", "cpu#1")
    assert holder(tmp_path, Device("cpu#0")) is None and holder(tmp_path, Device("cpu#1")) is None


def _lease_once(devices, home, waits):
    with lease_device(devices, home, "c", waits.append) as device:
        return device.name


def test_a_killed_holder_cannot_keep_its_device(tmp_path):
    """SIGKILL runs no cleanup; the kernel drops the flock with the process, so the device is free at once."""
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from resources.devices import lease_device, parse_devices
        with lease_device(parse_devices("cpu", 0), Path({str(tmp_path)!r}), "doomed step"):
            print("held", flush=True)
            time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert holder(tmp_path, Device("cpu#0")) == {"pid": child.pid, "owner": "doomed step",
                                                     "since": pytest.approx(time.time(), abs=60)}
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert holder(tmp_path, Device("cpu#0")) is None
    with lease_device(parse_devices("cpu", 0), tmp_path, "retry") as device:
        assert device.name == "cpu#0"


def test_the_gpu_resource_runs_each_step_on_its_leased_device(tmp_path, monkeypatch):
    monkeypatch.setenv("VF3D_HOME", str(tmp_path))
    gpu = GPU(device="auto", gpus="cpu,cpu")
    with gpu.yield_for_execution(build_init_resource_context()) as first:
        with GPU(device="auto", gpus="cpu,cpu").yield_for_execution(build_init_resource_context()) as second:
            assert {first.record()["slot"], second.record()["slot"]} == {"cpu#0", "cpu#1"}
            assert first.settings().torch_device().type == "cpu"
            assert holder(tmp_path, Device(first.record()["slot"]))["pid"] == os.getpid()
    assert first.record()["slot"] is None  # released with the step
    assert holder(tmp_path, Device("cpu#0")) is None


def test_every_asset_that_uses_a_device_is_in_the_gpu_pool():
    from vf3d_assets.assets import ALL_ASSETS

    users = [a for a in ALL_ASSETS if hasattr(a, "required_resource_keys") and "gpu" in a.required_resource_keys]
    assert len(users) >= 10
    assert [a.key.to_user_string() for a in users if a.op.pool != GPU_POOL] == []


def test_the_gpu_pool_has_one_slot_per_device(monkeypatch):
    from vf3d_assets.instance import sync_gpu_pool

    monkeypatch.setenv("VF3D_GPUS", "cpu,cpu,cpu")
    with instance_for_test() as instance:
        assert sync_gpu_pool(instance) == 3
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 3
        monkeypatch.setenv("VF3D_GPUS", "cpu")
        sync_gpu_pool(instance)
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
