import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

# Stable timings on 2 shared cores (DESIGN.md); set before torch or bpy spin up thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """A folder for synthetic .blend shots shared by the whole session."""
    return tmp_path_factory.mktemp("shots")


# Tests register their own shots in a user catalog (VF3D_USER_CATALOG) before the Dagster code location is
# imported; the files it names are written by the tests that use them.
USER_CATALOG_DIR = Path(tempfile.mkdtemp(prefix="vf3d-test-catalog-"))
USER_CATALOG = USER_CATALOG_DIR / "catalog.json"
USER_CATALOG.write_text(json.dumps({
    "render": {"width": 64, "height": 48},
    "scenes": [
        {"key": "test_shot_a", "source": "shot_a.blend", "description": "test: sideways dolly"},
        {"key": "test_shot_b", "source": "shot_b.blend", "description": "test: sideways dolly, other step"},
        {"key": "test_shot_m", "source": "shot_m.blend", "description": "test: every method on one shot"},
    ],
    "styles": [{"key": "test_style", "reference": "test_style.png", "identifier": "a test in qqq style"}],
}))
# A reference image of our own, so tests may edit it (the benchmark's images are shipped data).
Image.new("RGB", (64, 48), (180, 90, 40)).save(USER_CATALOG_DIR / "test_style.png")
os.environ["VF3D_USER_CATALOG"] = str(USER_CATALOG)
os.environ["VF3D_HOME"] = str(USER_CATALOG_DIR / "home")


@pytest.fixture
def clean_env(tmp_path):
    """No VF3D_* deployment variable set, and a fresh working folder; the environment is restored afterwards
    (the code under test fills it, as it does in the code location's process)."""
    from resources.deployment import SETTINGS

    saved = dict(os.environ)
    for setting in SETTINGS:
        os.environ.pop(setting.env, None)
    os.environ["VF3D_HOME"] = str(tmp_path)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def demo_env(home: Path) -> dict:
    """The environment of a user running vf3d on the demo alone in the working folder `home`."""
    env = {**os.environ, "VF3D_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    env.pop("VF3D_USER_CATALOG", None)  # the demo's catalog only, in the demo run and in the UI alike
    return env


@dataclass
class DemoRun:
    home: Path
    demo: subprocess.CompletedProcess
    seen: subprocess.CompletedProcess
    """What a second process opening the same home saw right after the demo: its run count and whether guidance
    was materialized (later tests add runs to this home)."""


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """One `vf3d demo` (about two minutes) into a fresh working folder, shared by the tests that read it."""
    home = tmp_path_factory.mktemp("demo") / "home"
    env = demo_env(home)
    demo = subprocess.run([sys.executable, "-m", "vf3d_assets.cli", "demo"], capture_output=True, text=True,
                          env=env, timeout=900)
    check = ("from dagster import DagsterInstance, AssetKey; i = DagsterInstance.get(); "
             "print(len(i.get_runs()), i.get_latest_materialization_event(AssetKey('guidance')) is not None)")
    seen = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          env={**env, "DAGSTER_HOME": str(home / "dagster_home")})
    return DemoRun(home, demo, seen)


def run_cli(capsys, *argv):
    """Run `vf3d` in-process; (exit code, stderr)."""
    from vf3d_assets.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
