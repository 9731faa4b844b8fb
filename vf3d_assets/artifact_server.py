"""The artifacts folder in the browser: the read-only server `vf3d ui` starts, and links to the results pages.

`vf3d ui` replaces itself with `dagster dev` (execv), so the server is a child process of it: it serves the
artifacts folder on 127.0.0.1 (GET and HEAD only, with HTTP Range requests so that a `<video>` can seek; Python's
`http.server` answers every request with the whole file), and exits when its parent does (Linux
PR_SET_PDEATHSIG, and a poll of the parent pid elsewhere). Its base URL is exported as `VF3D_ARTIFACTS_URL`, which
dagster dev's code server inherits, so the benchmark report can link to its page with `MetadataValue.url`.

Run as a script (`python -I artifact_server.py ROOT --parent PID`) so that the server imports the standard library
only: no Dagster, no torch, started in a fraction of a second. Functions used by the pipeline import lazily.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import http.server
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # the pipeline's types, never imported by the server itself
    from dagster import MetadataValue

    from resources.artifacts import ArtifactStore

ARTIFACTS_URL_ENV = "VF3D_ARTIFACTS_URL"
"""The served artifacts folder's base URL (no trailing slash), set by `vf3d ui` for the processes it starts."""
REPORT_PAGE = ("benchmark_report", "all", "index.html")
"""The benchmark report's results page, relative to the artifacts folder."""
SHOT_PAGE_ASSET = "shot_page"
"""The folder (under the artifacts folder) of the designer pages `vf3d run` writes, one per scene x style."""
START_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class ReadOnlyHandler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD of files under the served folder, with single byte ranges (206/416); nothing that writes."""

    protocol_version = "HTTP/1.1"  # keep-alive: a page of many videos reuses its connections
    _remaining: int | None = None

    def log_message(self, format: str, *args: Any) -> None:  # the base class's parameter names
        pass  # dagster dev owns the terminal; a line per video chunk would bury its messages

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-cache")  # a re-materialized report shows at the next load
        super().end_headers()

    def _refuse(self) -> None:
        self.send_response(405, "read-only")
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # http.server dispatches on these names

    def _inside_root(self, path: str) -> bool:
        """A symlink must not lead out of the served folder."""
        root = os.path.realpath(self.directory)
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    def send_head(self) -> BinaryIO | None:
        self._remaining = None
        path = self.translate_path(self.path)
        if not self._inside_root(path):
            self.send_error(404, "not found")
            return None
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if os.path.isdir(path) or match is None or match.group(1) == match.group(2) == "":
            return super().send_head()  # no (or a multi-part) range: the whole file, as http.server does
        try:
            file = open(path, "rb")  # noqa: SIM115 - returned to the base class, which closes it
        except OSError:
            self.send_error(404, "not found")
            return None
        size = os.fstat(file.fileno()).st_size
        first, last = match.groups()
        if first == "":  # the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            file.close()
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", self.date_time_string(int(os.fstat(file.fileno()).st_mtime)))
        self.end_headers()
        file.seek(start)
        self._remaining = end - start + 1
        return file

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
        if self._remaining is None:
            shutil.copyfileobj(source, outputfile)
            return
        while self._remaining > 0:
            chunk = source.read(min(64 * 1024, self._remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            self._remaining -= len(chunk)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a browser dropping a video request it no longer needs (a seek, a closed tab): routine
        super().handle_error(request, client_address)


def _exit_with_parent(parent: int, server: _Server) -> None:
    """Stop serving when `parent` (the `vf3d ui` process, now dagster dev) is gone."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: the kernel sends SIGTERM when the parent dies
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    def watch() -> None:  # elsewhere, and for a parent that died before prctl above: poll
        while os.getppid() == parent:
            time.sleep(1.0)
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()


def serve(root: Path, port: int, parent: int) -> None:
    """Serve `root` read-only on 127.0.0.1:`port` (0: a free port) until `parent` exits; the first line on stdout
    is the base URL, then stdout is closed (the reader of that line may be gone)."""
    handler = functools.partial(ReadOnlyHandler, directory=str(root))
    try:
        server = _Server(("127.0.0.1", port), handler)
    except OSError as exc:  # the starter turns this line into its one-line error
        print(f"error: {exc.strerror or exc}", flush=True)
        raise SystemExit(2) from None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal stops dagster; we follow it
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    _exit_with_parent(parent, server)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    with server:
        server.serve_forever(poll_interval=0.5)


def start_artifact_server(root: Path, port: int = 0) -> tuple[str, subprocess.Popen]:
    """Start the server over `root` as a child of this process; its base URL (printed by the child once it
    listens) and the process."""
    from vf3d.common.errors import VF3DInputError

    root.mkdir(parents=True, exist_ok=True)  # a fresh working folder has no artifacts yet: serve it empty
    process = subprocess.Popen([sys.executable, "-I", str(Path(__file__).resolve()), str(root), "--port", str(port),
                                "--parent", str(os.getpid())], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True)
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline().strip() if ready else ""
    process.stdout.close()
    if not line.startswith("http://"):
        process.kill()
        process.wait()
        problem = line.removeprefix("error: ") or f"no answer in {START_TIMEOUT_S:.0f} s"
        raise VF3DInputError(f"127.0.0.1:{port or 0}", f"the artifacts server could not listen there ({problem})")
    return line, process


def page_url(page: Path, root: Path) -> str | None:
    """The served address of `page` (a file under the artifacts folder `root`) when `vf3d ui` serves it."""
    base = os.environ.get(ARTIFACTS_URL_ENV)
    if not base:
        return None
    return f"{base.rstrip('/')}/{urllib.parse.quote(page.relative_to(root).as_posix())}"


def page_metadata(page: Path, root: Path) -> MetadataValue:
    """A link to the page for the Dagster UI: its served URL under `vf3d ui`, else its file path."""
    from dagster import MetadataValue

    url = page_url(page, root)
    return MetadataValue.url(url) if url else MetadataValue.path(str(page))


def write_shot_page(artifacts: ArtifactStore, scene: str, style: str) -> Path:
    """A designer's page for one scene x style (`vf3d run`): every scored method's video, the anchors, the edge
    maps and the numbers, written atomically to `<artifacts>/shot_page/<scene>__<style>/index.html`."""
    import json

    from evaluation.metrics import METRICS_CODE_VERSION
    from evaluation.report import current_records
    from evaluation.results_page import ArtifactLayout, write_results_page
    from vf3d.baselines.methods import METHODS
    from vf3d.common.atomic import atomic_dir
    from vf3d_assets.assets.evaluation import metrics_asset_name
    from vf3d_assets.assets.ggi import video_asset_name

    pair = f"{scene}|{style}"
    records = [json.loads(path.read_text()) for key in METHODS
               if (path := artifacts.path(metrics_asset_name(key), pair) / "metrics.json").is_file()]
    records, _ = current_records(records, METRICS_CODE_VERSION)  # as the report: no numbers of an older definition
    out = artifacts.path(SHOT_PAGE_ASSET, pair)
    with atomic_dir(out) as tmp:
        write_results_page(records, tmp, ArtifactLayout(artifacts.base(), video_asset_name), page_dir=out,
                           title=f"Shot {scene} × style {style}", summary=False)
    return out / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve a folder read-only on 127.0.0.1 while a parent lives")
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    if os.getppid() != args.parent:  # the parent died while this process started
        return
    serve(args.root, args.port, args.parent)


if __name__ == "__main__":
    main()
