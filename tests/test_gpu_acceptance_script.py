"""The GPU acceptance script stays runnable: its FLUX stages on the shrunk architectures on the CPU (its GGI stage
runs the same `GGIPipeline` call the full-shape tests run). The numbers themselves come from a GPU run.

The GPU machine has no Dagster, Blender, PyAV or pyiqa installed (`scripts/gpu_bundle.sh` brings pyiqa for the
metrics stage only), so the run here hides those packages: every import finder answers "no such module" for them,
as on that machine, and any import attempt is reported and fails the test."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_acceptance.py"

HIDDEN = ("dagster", "vf3d_assets", "resources", "bpy", "av", "pyiqa")
"""Absent on the GPU machine (pyiqa: not needed by the stages run here)."""

# python -c HIDE_AND_RUN HIDDEN,NAMES ATTEMPTS.json SCRIPT ARGS...: runs SCRIPT with every meta-path finder wrapped
# so that the hidden top-level packages (and their submodules) are not found, and writes every attempt to find one
# as [name, "import" | "probe"] ("probe": importlib.util.find_spec, which optional-dependency checks use).
HIDE_AND_RUN = r"""
import atexit, json, runpy, sys

hidden, attempts_file = set(sys.argv[1].split(",")), sys.argv[2]
attempts = []


class Hide:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            frame = sys._getframe(1)  # importlib's _find_spec, called by an import statement or by find_spec
            while frame.f_code.co_name == "_find_spec":
                frame = frame.f_back
            attempt = [name, "import" if frame.f_code.co_name == "_find_and_load_unlocked" else "probe"]
            if attempt not in attempts:  # each wrapped finder is asked in turn
                attempts.append(attempt)
            return None
        find_spec = getattr(self.finder, "find_spec", None)
        return None if find_spec is None else find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
for name in list(sys.modules):
    if name.partition(".")[0] in hidden:
        attempts.append([name, "loaded before the run"])
atexit.register(lambda: open(attempts_file, "w").write(json.dumps(attempts)))
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_hidden(tmp_path: Path, *args: str, timeout: int = 600) -> tuple[subprocess.CompletedProcess, list]:
    attempts = tmp_path / "import_attempts.json"
    run = subprocess.run([sys.executable, "-c", HIDE_AND_RUN, ",".join(HIDDEN), str(attempts), str(SCRIPT), *args],
                         capture_output=True, text=True, timeout=timeout)
    return run, json.loads(attempts.read_text()) if attempts.exists() else [["no attempts file", "?"]]


def test_acceptance_script_measures_each_stage_and_offload_mode_without_dagster(tmp_path):
    out, out_dir = tmp_path / "acceptance.json", tmp_path / "device_out"
    # noise is planned at 10^6 s: the budget skips it (and it alone) before it starts
    run, attempts = run_hidden(tmp_path, "--scale", "shrunk", "--device", "cpu", "--offload", "none,model",
                               "--stages", "lora,anchor,noise", "--lora-steps", "3", "--anchor-steps", "2",
                               "--budget-s", "5000", "--expect", "noise=1000000", "--out", str(out),
                               "--out-dir", str(out_dir))
    assert run.returncode == 0, run.stderr[-2000:]
    assert not [name for name, how in attempts if how != "probe"], f"imported on the GPU machine's path: {attempts}"
    report = json.loads(out.read_text())
    assert json.loads((out_dir / "acceptance.json").read_text()) == report
    results = report["results"]
    lora, anchor = results["lora/offload=none"], results["anchor/offload=none"]
    assert len(lora["losses"]) == 3 and lora["seconds_per_style_400_steps"] == round(400 * lora["seconds_per_step"], 1)
    assert anchor["image"] == [720, 480] and anchor["seconds_per_anchor_25_steps"] > anchor["seconds"]
    assert anchor["wall_seconds"] >= anchor["seconds"]  # the wall time includes the model build
    # model offloading needs a GPU: recorded as an error for that mode, the run goes on
    assert "the device is the CPU" in results["lora/offload=model"]["error"]
    # the stages ran in the order of value, whatever order --stages named them in
    assert list(report["plan"]) == ["anchor/offload=none", "anchor/offload=model", "lora/offload=none",
                                    "lora/offload=model", "noise/offload=none"]
    assert report["plan"]["noise/offload=none"] == "skipped" and "noise/offload=none" not in results
    assert report["skipped"]["noise/offload=none"].startswith("budget: expected ~1000000 s")
    summary = (out_dir / "summary.txt").read_text()
    assert summary.strip() in run.stdout and len(summary.splitlines()) <= 24
    assert any(line.split()[:3] == ["anchor", "none", "ok"] for line in summary.splitlines())
    assert any(line.split()[:3] == ["lora", "model", "error"] for line in summary.splitlines())
    assert "to run them later: --stages noise --offload none" in summary


def test_acceptance_script_refuses_bad_options_and_a_file_it_did_not_write(tmp_path):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "acceptance.json").write_text('{"their": "notes"}')
    for extra, problem in ((["--offload", "disk"], "offload: unknown value 'disk'"),
                           (["--out", str(mine)], "exists and is not an acceptance report"),
                           (["--out-dir", str(tmp_path / "theirs")], "exists and is not an acceptance report"),
                           (["--out-dir", str(mine)], "cannot make the folder (File exists)"),
                           (["--expect", "anchr=3"], "--expect: unknown stage 'anchr'"),
                           (["--budget-s", "nan"], "--budget-s nan: expected a number of seconds"),
                           (["--ggi-steps", "1"], "--ggi-steps 1: expected at least 2"),
                           (["--anchor-steps", "0"], "--anchor-steps 0: expected at least 1"),
                           (["--out", str(mine / "a.json")], "cannot write the report there"),
                           ([], "give --out FILE and/or --out-dir DIR")):
        out = [] if extra[:1] in (["--out"], ["--out-dir"]) or not extra else ["--out", str(tmp_path / "a.json")]
        run = subprocess.run([sys.executable, str(SCRIPT), *out, *extra], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 2 and problem in run.stderr.strip().splitlines()[-1], run.stderr[-500:]
    assert mine.read_text() == '{"my": "notes"}'
    assert (tmp_path / "theirs" / "acceptance.json").read_text() == '{"their": "notes"}'


def test_gpu_bundle_pins_are_the_lock_s_and_the_readme_command_fits_one_device_call():
    root = SCRIPT.parents[1]
    bundle_script = (root / "scripts" / "gpu_bundle.sh").read_text()
    pins = bundle_script.split("BUNDLE=(", 1)[1].split(")", 1)[0].split()
    lock = {line.split("==")[0].lower().replace("_", "-"): line.strip() for line in
            (root / "requirements.lock").read_text().splitlines() if "==" in line}
    assert pins and all(lock.get(pin.split("==")[0].lower()) == pin for pin in pins), (pins, "vs requirements.lock")
    assert not {"dagster", "bpy", "av", "torch"} & {pin.split("==")[0] for pin in pins}
    readme = (root / "README.md").read_text()
    block = readme.split("<!-- gpu-acceptance-command", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert "\n" not in block and len(block) < 2000  # one command line for the device machine
    assert all(part in block for part in ("gpu_bundle/*.whl", "--no-index", "scripts/gpu_acceptance.py",
                                          "--budget-s", "--out-dir"))
