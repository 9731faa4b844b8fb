"""The miniature Table 3 (scripts/mini_ablation.py, docs/mini_ablation.md) at its --quick budget: every phase runs
(renders, the shared VAE fit, the three GGI trainings, sampling and scoring) and the results hold the three
structure conditions with finite metrics; a rerun reuses every phase; a folder the script did not write is refused."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mini_ablation.py"


def _run(out: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--quick", "--workers", "1",
                           "--threads", "1"], check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_quick_run_scores_the_three_conditions(tmp_path):
    out = tmp_path / "ablation"
    run = _run(out)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["variants"]) == ["hed", "hed_s", "none"]
    for condition, variant in results["variants"].items():
        assert len(variant["train_losses"]) == results["budget"]["ggi_steps"]
        assert all(math.isfinite(x) for x in variant["train_losses"])
        assert variant["held_out_loss_curve"][0][0] == 0 and variant["held_out_loss_curve"][-1][0] == \
            results["budget"]["ggi_steps"]
        for metric in ("psnr", "ssim", "psnr_pgt", "ssim_pgt", "flicker_mae"):
            assert math.isfinite(variant["summary"][metric]["mean"]), (condition, metric)
    assert math.isfinite(results["vae"]["held_out_reconstruction_psnr"]["in_between"])
    assert {"hed_s-none", "hed-none", "hed_s-hed"} <= set(results["paired"])
    for row in results["diagnostics"]["rows"].values():  # the structured models with their training kind of maps
        assert math.isfinite(row["summary"]["psnr"]["mean"])
    assert (out / "curves.png").stat().st_size > 1000 and (out / "examples.png").stat().st_size > 1000
    assert "HED-S" in (out / "table.md").read_text()

    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    scratch = {pid: out / f".tmp-render-work.{socket.gethostname().replace('.', '_')}-{pid}.abc"
               for pid in (killed.stdout.strip(), str(os.getpid()))}  # a killed run's, a live one's
    for folder in scratch.values():
        folder.mkdir()
        (folder / "frame.png").write_bytes(b"")
    again = _run(out)  # everything cached: no render, no fit, no training
    assert not scratch[killed.stdout.strip()].exists() and scratch[str(os.getpid())].is_dir()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rendered" not in again.stdout and "autoencoder fitted" not in again.stdout and "train loss" not in again.stdout
    assert json.loads((out / "results.json").read_text())["variants"]["hed_s"]["summary"] == \
        results["variants"]["hed_s"]["summary"]


def test_a_folder_it_did_not_write_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--quick"], check=False,
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode != 0 and "did not write" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_a_checkpoint_folder_holding_foreign_files_is_refused_in_one_line_even_from_a_worker(tmp_path):
    import importlib.util
    import pickle

    import pytest

    from vf3d.common.errors import VF3DInputError

    spec = importlib.util.spec_from_file_location("mini_ablation_under_test", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclasses resolve their module
    try:
        spec.loader.exec_module(script)
        folder = tmp_path / "checkpoints" / "hed_s"
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("mine")
        with pytest.raises(VF3DInputError) as refused:
            script.clear_checkpoints(folder)
    finally:
        del sys.modules[spec.name]
    assert refused.value.where == str(folder) and "did not write (notes.txt)" in str(refused.value)
    assert (folder / "notes.txt").read_text() == "mine"
    # a worker pool sends it back pickled: it must arrive whole, as the one line main() prints
    back = pickle.loads(pickle.dumps(refused.value))
    assert (back.where, back.problem, str(back)) == (refused.value.where, refused.value.problem, str(refused.value))
