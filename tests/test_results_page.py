"""The results page without a browser: what it links to and how (relative, nothing copied, still right after the
artifacts folder moves), the report's numbers and marks, escaping, packaging, the benchmark report asset's link,
the designer's page, and the read-only artifact server `vf3d ui` starts (ranges, refusals, exit with its parent).
The page in Chromium: tests/test_ui_browser.py."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from evaluation.metrics import LOWER_IS_BETTER, PAPER_TABLE2
from evaluation.report import COLUMNS, HEADERS, paper_rows_as_dicts, write_report
from evaluation.report import interval_text
from evaluation.results_page import PAGE, ArtifactLayout, render_results_page, write_results_page
from evaluation.standin_results import write_standin_results
from vf3d.common.atomic import atomic_dir
from vf3d.common.errors import VF3DInputError

REPO = Path(__file__).resolve().parents[1]
SCENES = (("cottage", "object-centric"), ("corridor", "indoor"), ("street", "outdoor"))
STYLES = ("painterly", "photo")
METHODS = ("ggi", "sag_dense", "anchor_warp")
FRAMES = 8


def video_folder(method: str) -> str:
    from vf3d_assets.assets.ggi import video_asset_name

    return video_asset_name(method)


class _Tree(HTMLParser):
    """The page as an ElementTree (no HTML parser library in the venv); a tag closed out of order fails the test."""

    VOID = frozenset({"img", "input", "meta", "br", "source", "link", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder, self.open = ET.TreeBuilder(), ["root"]
        self.builder.start("root", {})

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.builder.start(tag, {k: "" if v is None else v for k, v in attrs})
        if tag in self.VOID:
            self.builder.end(tag)
        else:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.open.pop() == tag, f"</{tag}> closes another element"
        self.builder.end(tag)

    def handle_data(self, data: str) -> None:
        self.builder.data(data)


def parse(html: str) -> ET.Element:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    assert tree.open == ["root"], tree.open
    tree.builder.end("root")
    return tree.builder.close()


def text(element: ET.Element) -> str:
    return " ".join("".join(element.itertext()).split())


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> tuple[Path, list[dict]]:
    """An artifacts folder with 3 scenes x 2 styles x 3 methods of stand-in media and records."""
    root = tmp_path_factory.mktemp("page") / "artifacts"
    records = write_standin_results(root, SCENES, STYLES, METHODS, video_folder, frames=FRAMES)
    return root, records


def write_page(root: Path, records: list[dict]) -> Path:
    """Report and page, as the `benchmark_report` asset writes them."""
    out = root / "benchmark_report" / "all"
    with atomic_dir(out) as tmp:
        paths = write_report(records, paper_rows_as_dicts(PAPER_TABLE2), tmp)
        write_results_page(records, tmp, ArtifactLayout(root, video_folder), page_dir=out,
                           table=pd.read_csv(paths["benchmark"]), scenes=pd.read_csv(paths["per_scene"]))
    return out / PAGE


def links(page: Path) -> list[str]:
    tree = parse(page.read_text())
    found = [e.get("src") for e in tree.iter() if e.tag in ("video", "img") and e.get("src")]
    found += [e.get("href") for e in tree.iter("a") if not e.get("href", "#").startswith("#")]
    edges = [e for e in tree.iter("img") if e.get("data-folder")]
    found += [e.get("data-folder") + str(i).zfill(int(e.get("data-digits"))) + ".png" for e in edges
              for i in range(int(e.get("data-count")))]  # every edge map the page shows while a shot plays
    return found


def test_the_page_links_every_video_anchor_and_edge_map_relatively_and_copies_nothing(standins, tmp_path):
    root, records = standins
    page = write_page(root, records)
    found = links(page)
    for link in found:
        assert "://" not in link and not link.startswith("/"), link  # relative: from disk, a zip or a server
        assert (page.parent / urllib.parse.unquote(link)).resolve().is_file(), link
    videos = {(page.parent / urllib.parse.unquote(v)).resolve() for v in found if v.endswith(".mp4")}
    assert videos == {(root / video_folder(m) / f"{s}__{y}" / "video.mp4").resolve()
                      for (s, _) in SCENES for y in STYLES for m in METHODS}
    linked = {(page.parent / urllib.parse.unquote(v)).resolve() for v in found}
    for scene, _ in SCENES:
        assert {(root / "guidance" / scene / "edges" / f"{i:05d}.png").resolve() for i in range(FRAMES)} <= linked
        for style in STYLES:
            assert {p.resolve() for p in (root / "anchors" / f"{scene}__{style}" / "anchors").glob("*.png")} <= linked
    # nothing copied beside the page: the folder holds what the report alone writes, and the page
    report_only = write_report(records, paper_rows_as_dicts(PAPER_TABLE2), tmp_path / "report_only")
    assert {p.name for p in page.parent.iterdir()} == {p.name for p in report_only.values()} | {PAGE, ".vf3d-output"}
    assert page.stat().st_size < 60_000
    # sent to a colleague: the artifacts folder zipped and unpacked elsewhere, every link still resolves
    archive = tmp_path / "results.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in root.rglob("*"):
            zipped.write(path, path.relative_to(root.parent))
    shutil.unpack_archive(archive, tmp_path / "colleague")
    moved = tmp_path / "colleague" / root.name / "benchmark_report" / "all" / PAGE
    assert all((moved.parent / urllib.parse.unquote(link)).is_file() for link in links(moved))


def test_the_page_shows_the_reports_numbers_marks_and_each_videos_own(standins):
    root, records = standins
    page = write_page(root, records)
    tree = parse(page.read_text())
    table = pd.read_csv(page.with_name("benchmark.csv"))
    overall = table[table["category"] == "overall"]
    rows = tree.findall(".//table[@id='overall-table']/tbody/tr")
    assert [text(r.find("th")).split(" ", 1)[-1] for r in rows] == list(overall["label"])
    for row, (_, expected) in zip(rows, overall.iterrows()):
        cells = row.findall("td")[1:]
        assert len(cells) == len(COLUMNS)
        if expected["generation_profile"] == "published":
            assert "published" in row.get("class") and row.get("data-method") == "published"
            continue
        assert "tiny" in row.get("class") and row.get("data-method") == expected["method"]  # stand-ins are tiny
        for cell, column in zip(cells, COLUMNS):
            assert cell.find("span[@class='mean']").text == f"{expected[column]:.3f} ± {expected[f'{column}_std']:.3f}"
            # the report's interval over 3 scenes, as the Markdown writes it
            interval = f"[{expected[f'{column}_ci_low']:.3f}, {expected[f'{column}_ci_high']:.3f}]"
            shown = cell.find("span[@class='interval']")
            assert shown.text == shown.get("title") == interval == interval_text(expected, f"{column}_")
            assert float(cell.get("data-sort")) == pytest.approx(expected[column], rel=1e-6)
    # per category, 1 scene each: no interval, and the report's reason on hover
    category = parse(render_results_page(
        records, ArtifactLayout(root, video_folder), page.parent, table=table[table["category"] == "indoor"].assign(
            category="overall"))).find(".//table[@id='overall-table']/tbody/tr/td/span[@class='interval']")
    assert (category.text, category.get("title")) == ("no interval", "1 scene: too few for an interval")
    assert tree.find(".//img[@src='benchmark.png']") is not None
    assert len(tree.findall(".//section[@id='scenes']/details")) == len(SCENES)
    # under each video its own record's numbers, the best of the shot's generating methods in bold
    for shot in tree.iter("article"):
        figures = {f.get("data-method"): f for f in shot.findall(".//figure[@data-method]")}
        assert list(figures) == ["ggi", "sag_dense", "anchor_warp"]  # the methods' order, ours first
        scene, style = shot.get("data-scene"), shot.get("data-style")
        mine = {r["method"]: r for r in records if (r["scene"], r["style"]) == (scene, style)}
        for column in COLUMNS:
            values = {m: mine[m][column] for m in ("ggi", "sag_dense")}  # anchor_warp is the pseudo-GT itself
            best = (min if column in LOWER_IS_BETTER else max)(values, key=values.get)
            for method, figure in figures.items():
                terms = [text(t) for t in figure.iter("dt")]
                value = list(figure.iter("dd"))[terms.index(HEADERS[column])]
                assert value.text == f"{mine[method][column]:.3f}"
                assert (value.get("class") == "best") == (method == best), (scene, style, column, method)


def test_styles_and_scripts_are_inlined_verbatim_and_text_is_escaped(standins, tmp_path):
    root, records = standins
    odd = [dict(records[0], method="x<script>alert(1)</script>")]  # a name the page must print, never run
    html = render_results_page(odd, ArtifactLayout(root, video_folder), tmp_path)
    assert "<script>alert(1)" not in html and "x&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = render_results_page(records, ArtifactLayout(root, video_folder), tmp_path)
    for name in ("results_page.js", "results_page.css"):  # Jinja2 left them alone: no `{#` ate a line
        source = (REPO / "evaluation" / "templates" / name).read_text()
        assert "\n".join(line.strip() for line in source.splitlines()) in page, name


def test_the_templates_are_packaged():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("evaluation", []) + package_data.get("*", [])
    templates = [p.relative_to(REPO / "evaluation").as_posix() for p in (REPO / "evaluation" / "templates").iterdir()]
    assert {"templates/results_page.html.j2", "templates/results_page.css", "templates/results_page.js"} <= set(templates)
    assert all(any(fnmatch(t, pattern) for pattern in patterns) for t in templates), (templates, patterns)


def test_the_report_asset_writes_the_page_and_links_it_served_or_on_disk(standins, monkeypatch):
    from dagster import DagsterInstance, materialize

    from resources import ArtifactStore
    from vf3d_assets.artifact_server import ARTIFACTS_URL_ENV
    from vf3d_assets.assets.evaluation import benchmark_report

    root, records = standins
    resources = {"artifacts": ArtifactStore(root=str(root))}
    page = root / "benchmark_report" / "all" / PAGE
    seen = {}
    for served in (None, "http://127.0.0.1:8765"):
        if served:
            monkeypatch.setenv(ARTIFACTS_URL_ENV, served)
        else:
            monkeypatch.delenv(ARTIFACTS_URL_ENV, raising=False)
        result = materialize([benchmark_report], resources=resources, instance=DagsterInstance.ephemeral())
        seen[served] = result.get_asset_materialization_events()[0].materialization.metadata["results_page"]
        assert page.is_file() and len(parse(page.read_text()).findall(".//video")) == len(records)
    assert type(seen[None]).__name__ == "PathMetadataValue" and seen[None].value == str(page)
    assert seen["http://127.0.0.1:8765"].value == "http://127.0.0.1:8765/benchmark_report/all/index.html"
    assert type(seen["http://127.0.0.1:8765"]).__name__ == "UrlMetadataValue"


def test_the_designers_page_shows_one_shot_its_anchors_edges_and_numbers(standins):
    from resources import ArtifactStore
    from vf3d_assets.artifact_server import write_shot_page

    root, records = standins
    # scored by an older metrics definition: not shown, as the report leaves it out
    stale = root / "metrics_per_frame" / "street__photo"
    with atomic_dir(stale) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(dict(records[0], scene="street", style="photo", method="per_frame",
                                                           metrics_code_version="0")))
    try:
        page = write_shot_page(ArtifactStore(root=str(root)), "street", "photo")
    finally:
        shutil.rmtree(stale)  # the other tests' artifacts folder as it was
    assert page == root / "shot_page" / "street__photo" / PAGE
    tree = parse(page.read_text())
    assert [(a.get("data-scene"), a.get("data-style")) for a in tree.iter("article")] == [("street", "photo")]
    assert tree.find(".//table[@id='overall-table']") is None  # one shot: no benchmark table, its numbers only
    assert [f.get("data-method") for f in tree.iter("figure") if f.get("data-method")] == list(METHODS)
    videos = [(page.parent / urllib.parse.unquote(v.get("src"))).resolve() for v in tree.iter("video")]
    assert videos == [(root / video_folder(m) / "street__photo" / "video.mp4").resolve() for m in METHODS]
    anchors = [(page.parent / urllib.parse.unquote(i.get("src"))).resolve() for i in tree.iter("img")]
    assert (root / "anchors" / "street__photo" / "anchors" / "00000.png").resolve() in anchors
    assert (root / "guidance" / "street" / "edges" / "00000.png").resolve() in anchors
    ggi = next(r for r in records if (r["scene"], r["style"], r["method"]) == ("street", "photo", "ggi"))
    assert f"{ggi['clip_i']:.3f}" in text(tree.find(".//figure[@data-method='ggi']"))
    assert write_shot_page(ArtifactStore(root=str(root)), "street", "photo") == page  # again: replaced in place


# --- the artifact server ----------------------------------------------------------------------------------------

def request(url: str, path: str, method: str = "GET", headers: dict | None = None
            ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh connection: status, headers (case-insensitive), body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.fixture
def served(tmp_path):
    from vf3d_assets.artifact_server import start_artifact_server

    root = tmp_path / "artifacts"
    root.mkdir()
    (root / "clip.mp4").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    url, process = start_artifact_server(root)
    yield url, root
    process.terminate()
    process.wait(timeout=30)


def test_the_artifact_server_serves_byte_ranges_and_nothing_that_writes(served):
    url, root = served
    data = (root / "clip.mp4").read_bytes()
    assert url.startswith("http://127.0.0.1:")
    status, headers, body = request(url, "/clip.mp4")
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "video/mp4"
    status, headers, body = request(url, "/clip.mp4", headers={"Range": "bytes=1000-1099"})
    assert status == 206 and body == data[1000:1100] and headers["Content-Range"] == f"bytes 1000-1099/{len(data)}"
    status, headers, body = request(url, "/clip.mp4", headers={"Range": "bytes=10000-"})
    assert status == 206 and body == data[10000:] and headers["Content-Length"] == str(len(data) - 10000)
    status, headers, body = request(url, "/clip.mp4", headers={"Range": "bytes=-16"})
    assert status == 206 and body == data[-16:]
    status, headers, _ = request(url, "/clip.mp4", headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, headers, body = request(url, "/clip.mp4", "HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(data))
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = request(url, "/clip.mp4", method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    assert (root / "clip.mp4").read_bytes() == data
    assert request(url, "/../secret.txt")[0] == 404
    assert request(url, "/%2e%2e/secret.txt")[0] == 404
    assert request(url, "/link.txt")[0] == 404  # a symlink does not lead out of the folder


def test_the_artifact_server_exits_with_its_parent_and_names_a_busy_port(tmp_path):
    from vf3d_assets.artifact_server import start_artifact_server

    # the parent: a process that starts the server and is then killed outright (as `vf3d ui`'s dagster may be)
    code = ("import sys, time; from pathlib import Path; from vf3d_assets.artifact_server import "
            "start_artifact_server; url, p = start_artifact_server(Path(sys.argv[1])); print(url, p.pid, flush=True); "
            "time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        url, pid = parent.stdout.readline().split()
        assert request(url, "/")[0] == 200
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(VF3DInputError, match=f"127.0.0.1:{port}: the artifacts server could not listen"):
            start_artifact_server(tmp_path, port)  # taken by the first one
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline and _alive(int(pid)):
        time.sleep(0.2)
    assert not _alive(int(pid)), "the server outlived its parent"
    with pytest.raises(OSError):
        request(url, "/")


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps, its parent gone, has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_page_links_use_the_served_address_only_under_vf3d_ui(monkeypatch, tmp_path):
    from vf3d_assets.artifact_server import ARTIFACTS_URL_ENV, page_url

    page = tmp_path / "benchmark_report" / "all" / PAGE
    monkeypatch.delenv(ARTIFACTS_URL_ENV, raising=False)
    assert page_url(page, tmp_path) is None
    monkeypatch.setenv(ARTIFACTS_URL_ENV, "http://127.0.0.1:4000/")
    assert page_url(page, tmp_path) == "http://127.0.0.1:4000/benchmark_report/all/index.html"
