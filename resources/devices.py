"""The workstation's devices, and the lease that gives each GPU step one of them alone.

The deployment names its devices (`VF3D_GPUS`, e.g. "0,1,2,3"; default: every visible CUDA device, or one CPU
slot without CUDA; "cpu,cpu" makes two CPU slots, for machines without a GPU and for tests). The Dagster pool
`gpu` gets one slot per device (`sync_gpu_pool`), so no more GPU steps start than there are devices, and each
step leases a free device for its duration (`lease_device`): an exclusive `flock` on
`<VF3D_HOME>/devices/<device>.lock`. The kernel drops a flock when its process dies, however it dies (SIGKILL
included), so a crashed or killed step cannot leave a device held.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

GPUS_ENV = "VF3D_GPUS"
WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class Device:
    name: str
    """The slot's name: "cuda:1", or "cpu#0" for the n-th CPU slot."""

    @property
    def torch_device(self) -> str:
        """What the step's models are placed on: "cuda:1" or "cpu"."""
        return "cpu" if self.name.startswith("cpu") else self.name


def parse_devices(value: str, cuda_count: int | None = None) -> list[Device]:
    """The devices a `gpus` setting names: "" or "auto" = every visible CUDA device (else one CPU slot);
    "0,2" = CUDA devices 0 and 2; "cpu,cpu" = two CPU slots. A bad entry is a `ValueError` naming it."""
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries or entries == ["auto"]:
        return [Device(f"cuda:{i}") for i in range(cuda_count)] or [Device("cpu#0")]
    devices = []
    for entry in entries:
        if entry == "cpu":
            devices.append(Device(f"cpu#{sum(d.name.startswith('cpu') for d in devices)}"))
        elif re.fullmatch(r"(cuda:)?\d+", entry):
            index = int(entry.removeprefix("cuda:"))
            if index >= cuda_count:
                raise ValueError(f"gpus: CUDA device {index} does not exist ({cuda_count} visible)")
            if Device(f"cuda:{index}") in devices:
                raise ValueError(f"gpus: CUDA device {index} is named twice")
            devices.append(Device(f"cuda:{index}"))
        else:
            raise ValueError(f"gpus: {entry!r} is not a device; use CUDA indices (0,1,...), 'cpu' slots or 'auto'")
    return devices


def lock_dir(home: Path) -> Path:
    return home / "devices"


def holder(home: Path, device: Device) -> dict | None:
    """Who holds `device` now ({"pid", "owner", "since"}), or None when it is free."""
    path = lock_dir(home) / f"{device.name.replace(':', '_')}.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = Path(path).read_text()
        return json.loads(text) if text else {"pid": None, "owner": "?", "since": None}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def lease_device(devices: list[Device], home: Path, owner: str,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[Device]:
    """Hold the first free device of `devices` for the block (waiting while all are held). The lock file says
    who holds it (pid, owner, since) for `holder` and for people; the lock itself is the flock."""
    folder = lock_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for device in devices:
            fd = os.open(folder / f"{device.name.replace(':', '_')}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": os.getpid(), "owner": owner, "since": time.time()}).encode(), 0)
                yield device
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if on_wait is not None and not waited:
            on_wait(f"all {len(devices)} device(s) are busy; waiting for one to be free")
            waited = True
        time.sleep(WAIT_SECONDS)
