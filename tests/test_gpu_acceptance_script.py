"""The GPU acceptance script stays runnable: its FLUX stages on the shrunk architectures on the CPU (its GGI stage
runs the same `GGIPipeline` call the full-shape tests run). The numbers themselves come from a GPU run."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_acceptance.py"


def test_acceptance_script_measures_each_stage_and_offload_mode(tmp_path):
    out = tmp_path / "acceptance.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--scale", "shrunk", "--device", "cpu",
                          "--offload", "none,model", "--stages", "lora,anchor", "--lora-steps", "3",
                          "--anchor-steps", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    lora, anchor = results["lora/offload=none"], results["anchor/offload=none"]
    assert len(lora["losses"]) == 3 and lora["seconds_per_style_400_steps"] == round(400 * lora["seconds_per_step"], 1)
    assert anchor["image"] == [720, 480] and anchor["seconds_per_anchor_25_steps"] > anchor["seconds"]
    # model offloading needs a GPU: recorded as an error for that mode, the run goes on
    assert "the device is the CPU" in results["lora/offload=model"]["error"]


def test_acceptance_script_refuses_bad_options_and_a_file_it_did_not_write(tmp_path):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    for extra, problem in ((["--offload", "disk"], "offload: unknown value 'disk'"),
                           (["--out", str(mine)], "exists and is not an acceptance report")):
        run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "a.json"), *extra],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2 and problem in run.stderr.strip().splitlines()[-1], run.stderr[-500:]
    assert mine.read_text() == '{"my": "notes"}'
