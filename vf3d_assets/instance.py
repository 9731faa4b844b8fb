"""The persistent Dagster instance inside the project's working folder (never a fresh temp home)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from resources.artifacts import default_home

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME to `<VF3D_HOME>/dagster_home` unless already set, creating it with our dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(default_home() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(TEMPLATE, home / "dagster.yaml")
    return home


def sync_gpu_pool(instance) -> int:
    """Give the `gpu` pool one slot per device of the deployment (`VF3D_GPUS`), so that as many GPU steps run at
    once as there are devices to lease; returns that number. Stored in the instance (what
    `dagster instance concurrency set gpu N` does)."""
    from resources.devices import GPUS_ENV, parse_devices
    from resources.gpu import GPU_POOL

    slots = len(parse_devices(os.environ.get(GPUS_ENV, "auto")))
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, slots)
    return slots


def open_instance():
    """The persistent instance, its `gpu` pool sized to the deployment's devices, and the runs of processes that
    died without finishing marked failed, their pool slots freed (`vf3d_assets.dead_runs`)."""
    ensure_dagster_home()
    from dagster import DagsterInstance

    from vf3d_assets.dead_runs import fail_dead_runs

    instance = DagsterInstance.get()
    sync_gpu_pool(instance)
    fail_dead_runs(instance, log=lambda line: print(line, file=sys.stderr, flush=True))
    return instance
