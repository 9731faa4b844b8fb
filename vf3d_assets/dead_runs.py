"""Runs whose process died: found, marked failed, and their pool slots given back.

A run executed in-process (`vf3d run`, `demo`, `refresh`) or by a run worker of `vf3d ui` claims a slot of the
`gpu` pool for each step. Dagster frees a slot when the step ends; a process killed outright (SIGKILL, the OOM
killer, a closed laptop) never ends its step, so the run stays STARTED and keeps its slot, and every later step
of that pool waits for it forever. Dagster's run monitoring cannot see such a death with the default run launcher
(`DefaultRunLauncher` has no worker health check), so vf3d checks the process itself:

- every run vf3d executes in-process carries `OWNER_TAGS` (host, pid and the pid's start time, so a reused pid is
  not mistaken for the owner);
- a run launched by `vf3d ui`'s daemon logs its run worker's pid ("Started process for run (pid: N)");
- `fail_dead_runs` marks each unfinished run whose process is gone FAILURE, with a message saying so, and frees
  its concurrency slots and pending claims (`free_concurrency_slots_for_run`). A run of another host is never
  judged (its process cannot be asked); device leases and output locks are `flock`s, which the kernel already
  dropped when the process died;
- `materialize_owned`, the one way vf3d materializes in-process, tags the run and first waits for a slot of the
  asset's pool in `wait_for_pool_slot`: one line naming the holders, dead ones failed meanwhile, and Ctrl-C works
  there (Dagster's own wait, inside its step loop, defers interrupts until a step starts).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    materialize,
)

HOST_TAG, PID_TAG, PID_START_TAG = "vf3d/host", "vf3d/pid", "vf3d/pid_start"
UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
              DagsterRunStatus.CANCELING]
"""Statuses of a run that still has (or will have) a process working for it. QUEUED runs have none yet."""
POOL_POLL_SECONDS = 0.5


def _host() -> str:
    return socket.gethostname()


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux `/proc/<pid>/stat`, field 22); None when
    the process does not exist or the system has no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # after the command name, which may hold spaces and ')'


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run it executes in-process."""
    return {HOST_TAG: _host(), PID_TAG: str(os.getpid()), PID_START_TAG: process_start_time(os.getpid()) or ""}


def _alive(pid: int, start_time: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    if start_time and os.path.isdir("/proc"):
        return process_start_time(pid) == start_time  # else the pid was reused by a newer process
    return True


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the run worker `vf3d ui`'s daemon started for a run, from its engine event."""
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = (data.metadata or {}).get("pid") if data is not None else None
        if pid is not None and "Started process for run" in (event.message or ""):
            return int(pid.value)
    return None


@dataclass(frozen=True)
class RunOwner:
    run_id: str
    pid: int | None
    """The process working for the run; None when unknown (then the run is never judged dead)."""
    start_time: str | None
    host: str | None

    def dead(self) -> bool:
        return self.pid is not None and self.host == _host() and not _alive(self.pid, self.start_time)

    def describe(self) -> str:
        if self.pid is not None:
            return f"run {self.run_id[:8]} (pid {self.pid})"
        return (f"run {self.run_id[:8]} (its process is not recorded; if nothing works on it any more, terminate it "
                "in `vf3d ui`, Runs)")


def run_owner(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> RunOwner:
    if PID_TAG in tags:
        return RunOwner(run_id, int(tags[PID_TAG]), tags.get(PID_START_TAG) or None, tags.get(HOST_TAG))
    pid = _worker_pid(instance, run_id)
    # a daemon-launched run worker runs beside the local code server: this host, unless the instance is remote
    return RunOwner(run_id, pid, None, _host() if pid is not None and _local_instance(instance) else None)


def _local_instance(instance: DagsterInstance) -> bool:
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def fail_dead_runs(instance: DagsterInstance, log: Callable[[str], None] | None = None) -> list[str]:
    """Mark every unfinished run of this host whose process is gone FAILURE and free its concurrency slots and
    pending claims; returns their run ids. Safe to call at any time from any vf3d process."""
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED)):
        owner = run_owner(instance, run.run_id, run.tags)
        if not owner.dead():
            continue
        instance.report_run_failed(run, f"The process that ran this run (pid {owner.pid} on {owner.host}) died "
                                        "without finishing it (killed?); vf3d marked the run failed and freed its "
                                        "concurrency slots.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
        if log is not None:
            log(f"vf3d: {owner.describe()} died without finishing; marked it failed and freed its slots")
    # slots of runs that ended (a process that died after reporting its end) are not freed by Dagster either
    # without the daemon's run monitoring: free them too
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()
        for run in instance.get_runs(filters=RunsFilter(run_ids=list(holders))) if holders else []:
            if run.is_finished:
                storage.free_concurrency_slots_for_run(run.run_id)
    return failed


def _pool_of(assets: Sequence[AssetsDefinition], asset: str) -> str | None:
    definition = next((a for a in assets if AssetKey(asset) in getattr(a, "keys", ())), None)
    return definition.op.pool if definition is not None and definition.is_executable else None


def wait_for_pool_slot(instance: DagsterInstance, pool: str, what: str) -> None:
    """Return when `pool` has a free slot. Runs whose process died are failed and their slots freed first; while
    live runs hold every slot, say once which ones, then wait here (Ctrl-C stops it), not inside Dagster's
    step loop, which defers interrupts until a step starts."""
    said = None
    while True:
        fail_dead_runs(instance, log=lambda line: print(line, file=sys.stderr, flush=True))
        info = instance.event_log_storage.get_concurrency_info(pool)
        if info.slot_count == 0 or len(info.claimed_slots) < info.slot_count:
            return
        holders = sorted({slot.run_id for slot in info.claimed_slots})
        if holders != said:
            names = ", ".join(_holder(instance, run_id) for run_id in holders)
            print(f"vf3d: {what} waits for a slot of the '{pool}' pool ({info.slot_count} slot(s)), held by {names}; "
                  "Ctrl-C stops waiting", file=sys.stderr, flush=True)
            said = holders
        time.sleep(POOL_POLL_SECONDS)


def _holder(instance: DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    return run_owner(instance, run_id, run.tags if run is not None else {}).describe()


def materialize_owned(assets: Sequence[AssetsDefinition], asset: str, partition: str | None,
                      instance: DagsterInstance, resources: Mapping[str, object], run_config: Mapping) -> None:
    """Materialize one asset partition in this process: first wait (interruptibly) for a slot of its pool, then
    run it tagged with this process as its owner, so that a later command can tell if this process died."""
    pool = _pool_of(assets, asset)
    if pool is not None:
        wait_for_pool_slot(instance, pool, asset + (f"[{partition}]" if partition else ""))
    materialize(assets, selection=[asset], partition_key=partition, instance=instance, resources=resources,
                run_config=run_config, tags=owner_tags())
