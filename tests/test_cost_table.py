"""The benchmark's cost on paper (docs/cost.md): GPU-hours and wall time from the graph's dependencies."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import cost_table  # noqa: E402

CATALOG = json.loads((ROOT / "benchmark" / "catalog.json").read_text())


def test_wall_time_follows_the_dependencies():
    seconds = cost_table.PAPER_SECONDS
    rows = cost_table.cost_rows(CATALOG, seconds)
    assert rows["partitions"] == 48 and rows["segments"] == 28
    # paper: 197 s per one-segment trajectory = preprocessing (CPU) + 2 anchors + GGI
    assert seconds["preprocess_per_segment"] + 2 * seconds["anchor_per_view"] + seconds["ggi_per_segment"] == 197
    partitions = cost_table.benchmark_partitions(CATALOG, seconds)
    # photo_winter is photo's reference and identifier with a post-prompt: it samples with photo's LoRA
    assert cost_table.lora_of_style(CATALOG) == {"photo": "photo", "painterly": "painterly", "photo_winter": "photo"}
    assert rows["loras"] == 2 and {p.style for p in partitions} == {"photo", "painterly"}
    styles = sorted({p.style for p in partitions})
    one = cost_table.schedule(partitions, styles, seconds["lora_per_style"], 1)
    assert one == pytest.approx(rows["gpu_hours"] * 3600)  # one GPU: everything in a row, never idle
    unlimited = cost_table.schedule(partitions, styles, seconds["lora_per_style"], 1000)
    longest = max(p.gpu_seconds for p in partitions)  # a 3-segment shot: 4 anchors + 3 segments
    assert longest == 4 * 20 + 3 * 145 and unlimited == pytest.approx(seconds["lora_per_style"] + longest)
    walls = [rows["wall_hours"][g] for g in cost_table.GPU_COUNTS]
    assert walls == sorted(walls, reverse=True) and walls[-1] * 3600 >= unlimited


def test_our_times_come_from_a_gpu_acceptance_report():
    report = {"gpu": "NVIDIA H100", "results": {
        "lora/offload=group": {"seconds_per_style_400_steps": 900.0},
        "anchor/offload=group": {"seconds_per_anchor_25_steps": 15.0},
        "segment/offload=group": {"seconds_per_segment_30_steps": 120.0},
        "metrics/offload=none": {"seconds": 10.0}}}  # as gpu_acceptance.py keys them; metrics run once
    ours = cost_table.measured_seconds(report, "group")
    assert ours == {"preprocess_per_segment": 12.0, "lora_per_style": 900.0, "anchor_per_view": 15.0,
                    "ggi_per_segment": 120.0, "metrics_per_segment": 10.0}
    assert cost_table.cost_rows(CATALOG, ours)["gpu_hours"] == pytest.approx(
        (2 * 900 + 3 * (44 * 15 + 28 * 130)) / 3600)  # two LoRAs: photo_winter shares photo's
    with pytest.raises(SystemExit, match="no lora/offload=none"):
        cost_table.measured_seconds(report, "none")


def test_a_failed_metrics_stage_is_said_and_a_bad_report_is_one_line(tmp_path, capsys):
    report = {"results": {"lora/offload=none": {"seconds_per_style_400_steps": 900.0},
                          "anchor/offload=none": {"seconds_per_anchor_25_steps": 15.0},
                          "segment/offload=none": {"seconds_per_segment_30_steps": 120.0},
                          "metrics/offload=none": {"error": "OutOfMemoryError: CUDA out of memory"}}}
    assert "metrics_per_segment" not in cost_table.measured_seconds(report, "none")
    said = capsys.readouterr().err
    assert "metrics are left out" in said and "OutOfMemoryError" in said
    (tmp_path / "list.json").write_text("[1]")
    for path, problem in ((tmp_path / "none.json", "report file not found"), (tmp_path / "list.json", "got list")):
        run = subprocess.run([sys.executable, str(ROOT / "scripts" / "cost_table.py"), "--measured", str(path)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and run.stderr.startswith(f"error: {path}: ") and problem in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_the_docs_show_the_table_the_script_computes():
    paper = cost_table.PAPER_SECONDS
    table = cost_table.markdown({"paper (Table 4, A100-80GB)": (paper, cost_table.cost_rows(CATALOG, paper))})
    assert table in (ROOT / "docs" / "cost.md").read_text()
