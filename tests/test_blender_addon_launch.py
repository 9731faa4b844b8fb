"""The add-on's launch of a shot's run against a scripted GraphQL endpoint: it waits for the Dagster daemon only
when the shot is new to the running instance, relaunches a run the daemon refused for not having read the new
shot yet (a bounded number of times), and ends any other failure in one line. The whole path against a real
`vf3d ui` is tests/test_ui_browser.py::test_blender_addon_renders_a_shot_through_the_running_ui."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

ADDON = Path(__file__).parents[1] / "vf3d_assets" / "blender_addon" / "vf3d_render" / "__init__.py"
STAGES = [{"asset": "edge_maps", "partition": "my_shot"}, {"asset": "video", "partition": "my_shot|blue"}]
STALE = ("dagster._core.errors.DagsterAssetBackfillDataLoadError: Targeted partitions for asset "
         "AssetKey(['video']) have been removed since this backfill was stored. The following partitions were "
         "removed: {'my_shot|blue'}.")


@pytest.fixture(scope="module")
def addon():
    spec = importlib.util.spec_from_file_location("vf3d_render_under_test", ADDON)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as Blender's add-on loader does
    spec.loader.exec_module(module)  # imports bpy; its classes stay unregistered
    yield module
    del sys.modules[spec.name]


class Endpoint:
    """A webserver's GraphQL endpoint that knows some partitions and answers each backfill's status from a script."""

    def __init__(self) -> None:
        self.known = {"edge_maps": ["cottage"], "video": ["cottage|blue"]}
        self.statuses: list[tuple[str, str]] = []  # (status, error) of the 1st, 2nd, ... backfill launched
        self.launched: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["content-length"])))
                body = json.dumps({"data": endpoint.answer(request["query"], request["variables"])}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, query: str, variables: dict) -> dict:
        if "assetNodes" in query:
            return {"assetNodes": [{"assetKey": {"path": key["path"]}, "partitionKeys": self.known[key["path"][0]]}
                                   for key in variables["keys"] if key["path"][0] in self.known]}
        if "launchPartitionBackfill" in query:
            self.launched.append(variables["params"])
            return {"launchPartitionBackfill": {"__typename": "LaunchBackfillSuccess",
                                                "backfillId": f"b{len(self.launched)}"}}
        if "partitionBackfillOrError" in query:
            status, error = self.statuses[int(variables["id"][1:]) - 1]
            return {"partitionBackfillOrError": {"__typename": "PartitionBackfill", "status": status,
                                                 "error": {"message": error} if error else None,
                                                 "assetBackfillData": {"assetBackfillStatuses": []}}}
        raise AssertionError(f"unexpected query: {query}")


@pytest.fixture
def endpoint():
    served = Endpoint()
    yield served
    served.server.shutdown()


@pytest.fixture
def scene(addon, endpoint):
    shot = SimpleNamespace(name="my shot", vf3d=SimpleNamespace(server=endpoint.url, backfill_id="", status="",
                                                                scene_key="my_shot", video="/v/video.mp4"))
    yield shot
    addon.LAUNCHES.clear()


def test_only_a_shot_new_to_the_running_instance_waits_for_the_daemon(addon, endpoint):
    assert addon.new_partitions(endpoint.url, STAGES)  # my_shot is not among the partitions served
    endpoint.known = {"edge_maps": ["cottage", "my_shot"], "video": ["cottage|blue", "my_shot|blue"]}
    assert not addon.new_partitions(endpoint.url, STAGES)
    assert addon.new_partitions(endpoint.url, [*STAGES, {"asset": "new_asset", "partition": None}])


def test_a_run_waits_until_it_is_due_then_launches_once(addon, endpoint, scene, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(addon.time, "monotonic", lambda: clock[0])
    addon.LAUNCHES[scene.name] = addon.Launch(STAGES, "my_shot|blue", not_before=100.0 + addon.DAEMON_REREAD_SECONDS)
    endpoint.statuses = [("REQUESTED", "")]
    assert not addon.check_run(scene) and not endpoint.launched
    assert scene.vf3d.status.startswith("waiting for the Dagster daemon") and addon.in_progress(scene)
    clock[0] += addon.DAEMON_REREAD_SECONDS
    assert not addon.check_run(scene)
    assert scene.vf3d.backfill_id == "b1" and scene.vf3d.status == "running: 0/2 stages done"
    assert not addon.check_run(scene) and len(endpoint.launched) == 1
    partitions = [row["partitions"]["range"]["start"] for row in endpoint.launched[0]["partitionsByAssets"]]
    assert partitions == ["my_shot", "my_shot|blue"]


def test_a_run_the_daemon_refused_for_a_stale_shot_is_launched_again(addon, endpoint, scene, monkeypatch):
    loaded = []
    monkeypatch.setattr(addon, "load_video", lambda key, video: loaded.append((key, video)))
    clock = [0.0]
    monkeypatch.setattr(addon.time, "monotonic", lambda: clock[0])
    addon.LAUNCHES[scene.name] = addon.Launch(STAGES, "my_shot|blue", not_before=0.0)
    endpoint.statuses = [("FAILED", STALE), ("COMPLETED_SUCCESS", "")]
    assert not addon.check_run(scene) and scene.vf3d.backfill_id == "b1"
    assert not addon.check_run(scene)  # refused: wait for the daemon's next reread, then launch again
    assert scene.vf3d.backfill_id == "" and scene.vf3d.status.startswith("waiting for the Dagster daemon")
    assert not addon.check_run(scene) and len(endpoint.launched) == 1
    clock[0] += addon.DAEMON_REREAD_SECONDS
    assert not addon.check_run(scene) and scene.vf3d.backfill_id == "b2"
    assert addon.check_run(scene)
    assert scene.vf3d.status == "done: /v/video.mp4" and loaded == [("my_shot", Path("/v/video.mp4"))]
    assert not addon.in_progress(scene)


def test_relaunches_are_bounded_and_other_failures_are_one_line(addon, endpoint, scene, monkeypatch):
    monkeypatch.setattr(addon, "DAEMON_REREAD_SECONDS", 0.0)
    addon.LAUNCHES[scene.name] = addon.Launch(STAGES, "my_shot|blue", not_before=0.0)
    endpoint.statuses = [("FAILED", STALE)] * (addon.RELAUNCHES + 1)
    with pytest.raises(addon.VF3DError) as refused:
        for _ in range(10):
            addon.check_run(scene)
    assert len(endpoint.launched) == addon.RELAUNCHES + 1 and not addon.in_progress(scene)
    assert "have been removed since this backfill was stored" in str(refused.value)
    assert f"/runs/b/b{addon.RELAUNCHES + 1}" in str(refused.value)

    addon.LAUNCHES[scene.name] = addon.Launch(STAGES, "my_shot|blue", not_before=0.0)
    endpoint.statuses += [("FAILED", "RuntimeError: the GGI stage ran out of memory")]
    with pytest.raises(addon.VF3DError) as failed:
        for _ in range(3):
            addon.check_run(scene)
    assert len(endpoint.launched) == addon.RELAUNCHES + 2  # not launched again
    assert "ran out of memory" in str(failed.value) and "\n" not in str(failed.value)
    assert scene.vf3d.status == "failed (FAILED)" and not addon.in_progress(scene)


def test_the_wait_covers_the_daemons_reread(addon):
    """DAEMON_REREAD_SECONDS against the daemon's own cadence, so a Dagster upgrade that slows it shows here."""
    from dagster._daemon import controller

    reread = controller.RELOAD_WORKSPACE_INTERVAL + controller.THREAD_CHECK_INTERVAL
    assert addon.DAEMON_REREAD_SECONDS >= reread + 5  # and 5 s or more for the reread itself
