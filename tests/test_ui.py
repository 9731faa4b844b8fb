"""`vf3d ui` serves the code location on 127.0.0.1 from the persistent home, and stops on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_assets_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    env = {**os.environ, "VF3D_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    vf3d = Path(sys.executable).with_name("vf3d")
    process = subprocess.Popen([str(vf3d), "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    keys = set()
    try:
        deadline = time.time() + 180
        while time.time() < deadline and "guidance" not in keys:
            time.sleep(2)
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                                 headers={"content-type": "application/json"})
                nodes = json.load(urllib.request.urlopen(request, timeout=10))["data"]["assetNodes"]
                keys = {node["assetKey"]["path"][-1] for node in nodes}
            except (OSError, KeyError, TypeError, ValueError):
                continue
        assert {"scene_source", "scene", "guidance", "style_reference"} <= keys
        assert (tmp_path / "home" / "dagster_home" / "dagster.yaml").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            try:  # dagster dev's children (daemon, code servers) share the session: leave none behind
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert process.returncode is not None, "vf3d ui did not stop on SIGTERM"
