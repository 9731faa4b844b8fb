"""`vf3d ui` (webserver, daemon, run queue) started by a test on a free loopback port, and its GraphQL API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"content-type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, timeout=120))
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


def served_assets(url: str) -> set:
    """The asset names the UI serves; none while it starts."""
    try:
        nodes = graphql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    except (OSError, KeyError, TypeError, ValueError, AssertionError):
        return set()
    return {node["assetKey"]["path"][-1] for node in nodes}


@contextlib.contextmanager
def running_ui(env: dict, log_path: Path, wait_for: set[str], timeout: float = 900) -> Iterator[str]:
    """Start `vf3d ui` with `env` and yield its URL once it serves `wait_for` (or it exits; `timeout` only guards
    against a hang: on a busy machine the code location may take minutes); its whole process group is killed
    afterwards."""
    port = free_port()
    vf3d = Path(sys.executable).with_name("vf3d")
    with log_path.open("w") as log:
        process = subprocess.Popen([str(vf3d), "ui", "--port", str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline, keys = time.time() + timeout, set()
            while not wait_for <= keys and time.time() < deadline and process.poll() is None:
                time.sleep(2)
                keys = served_assets(url)
            assert wait_for <= keys, f"the UI did not serve the assets; see {log_path}"
            yield url
        finally:
            process.send_signal(signal.SIGTERM)  # dagster dev stops its daemon and code servers
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            with contextlib.suppress(ProcessLookupError):  # and what is left of its session (process group) goes
                os.killpg(process.pid, signal.SIGKILL)


BACKFILL = """mutation Launch($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on Error { message } ... on LaunchBackfillSuccess { backfillId } } }"""
BACKFILL_STATUS = """query Status($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs { runId status } } } }"""


def backfill(url: str, partitions: dict[str, list[str] | None]) -> str:
    """Launch one backfill over asset -> partition keys (None: unpartitioned); its id."""
    params = {"partitionsByAssets": [
        {"assetKey": {"path": [asset]},
         "partitions": None if keys is None else {"ranges": [{"start": k, "end": k} for k in keys]}}
        for asset, keys in partitions.items()]}
    result = graphql(url, BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def backfill_status(url: str, backfill_id: str) -> dict:
    return graphql(url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
