#!/usr/bin/env bash
# scripts/emulate_gpu_machine.sh [WORKDIR]: prove the README's GPU acceptance command here, before a GPU slot.
#
# Builds a throwaway virtual environment in WORKDIR (default /tmp/vf3d-gpu-emulation) holding what the lent GPU
# machine holds -- torch 2.11 with transformers, peft, accelerate, safetensors, timm, opencv, pandas and scipy as
# PyPI had them when torch 2.11.0 came out (that machine's exact versions are not known) -- and nothing else: no
# diffusers, pyiqa, Dagster, Blender or PyAV. Then runs the command of README "Run with real weights" verbatim,
# twice, with the bundle (scripts/gpu_bundle.sh) as the only extra packages:
#   1. cold: the bundle is installed into WORKDIR/site, then every stage for every offload mode, shrunk, on the CPU
#      (VF3D_ACCEPTANCE_ARGS below; no budget: the CPU needs about 30 minutes where the GPU gets 8);
#   2. warm: the same command again: the install is skipped, the budget stops every stage, the summary is printed.
# Fails unless every stage ran (model offloading on the CPU is an error by design) and nothing outside the
# machine's packages and the bundle was imported. PyPI's Linux torch wheels are CUDA builds (with the nvidia-*
# libraries, a few GB, cached by pip); they run on the CPU. Python: $PYTHON, else python3.12 (on PATH or pyenv's),
# else python3.11 with a note (the bundle's wheels are pure Python, the same files for both).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(realpath -m "${1:-/tmp/vf3d-gpu-emulation}")
MACHINE=(torch==2.11.0 torchvision==0.26.0 transformers==5.18.0 peft==0.21.0 accelerate==1.15.0 safetensors==0.8.0
         timm==1.0.29 opencv-python==5.0.0.93 pandas==3.0.1 scipy==1.17.1)
AS_OF=2026-03-24T00:00:00Z  # torch 2.11.0's wheels are dated 2026-03-23: its dependencies as PyPI had them then
RUN_ARGS=${EMULATE_ARGS:-"--scale shrunk --device cpu --budget-s 1000000 --anchor-steps 2 --ggi-steps 2 --lora-steps 2"}

python=${PYTHON:-}
if [ -z "$python" ]; then  # a pyenv shim may name a version it does not run: try each
  for candidate in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 python3.11; do
    if "$candidate" -c 'import ssl, venv' >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "error: no python3.12 or python3.11 (set PYTHON)" >&2; exit 2; }
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = 3.12 ] || echo "note: emulating with Python $pyver: no Python 3.12 here (the GPU machine has 3.12)"

# WORKDIR is ours to empty: new, empty, or made by an earlier run of this script
mkdir -p "$work"
if [ ! -f "$work/.vf3d-gpu-emulation" ] && [ -n "$(ls -A "$work")" ]; then
  echo "error: $work is not empty and was not made by this script; name another WORKDIR" >&2
  exit 2
fi
touch "$work/.vf3d-gpu-emulation"
rm -rf "$work/venv" "$work/site" "$work/cold" "$work/warm"

quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }  # this host's pip config
echo "== the GPU machine's packages (Python $pyver)"
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check)
quiet "${pip[@]}" install --quiet --upgrade pip  # --uploaded-prior-to needs pip >= 26
quiet "${pip[@]}" install --quiet torch==2.11.0  # its exact nvidia-* pins, whatever their upload dates
quiet "${pip[@]}" install --quiet --uploaded-prior-to "$AS_OF" "${MACHINE[@]}"
"${pip[@]}" list --format=freeze > "$work/machine-packages.txt"
grep -v '^nvidia-\|^cuda-' "$work/machine-packages.txt" | tr '\n' ' '; echo
for absent in diffusers pyiqa torchmetrics dagster bpy av; do
  if "${pip[@]}" show --quiet "$absent" 2>/dev/null; then
    echo "error: $absent is in the emulated machine; the GPU machine has none" >&2; exit 1
  fi
done

[ -f gpu_bundle/SHA256SUMS ] || bash scripts/gpu_bundle.sh gpu_bundle
echo "== the bundle"
cut -c67- gpu_bundle/SHA256SUMS | tr '\n' ' '; echo
command=$(awk '/<!-- gpu-acceptance-command/ {found = 1; next} found && /^```sh$/ {inside = 1; next}
               inside && /^```$/ {exit} inside {print}' README.md)
[ -n "$command" ] || { echo "error: no command under <!-- gpu-acceptance-command --> in README.md" >&2; exit 1; }

run() {  # run NAME ARGS...: the README command in the emulated machine, its output in WORKDIR/NAME.log
  local name=$1; shift
  echo "== $name run: VF3D_ACCEPTANCE_ARGS=$*"
  (cd "$repo" && env -u PYTHONPATH PATH="$work/venv/bin:$PATH" OUT="$work/$name" VF3D_SITE="$work/site" PYTHON=python3 \
     VF3D_ACCEPTANCE_ARGS="$*" bash -c "$command") > "$work/$name.log" 2>&1 || {
    echo "error: the $name run failed (exit $?); the end of $work/$name.log:" >&2; tail -30 "$work/$name.log" >&2; exit 1; }
  grep -E '^bundle: ' "$work/$name.log" || true
  sed -n '/^GPU acceptance/,$p' "$work/$name.log"
}
run cold "$RUN_ARGS"
run warm "$RUN_ARGS --budget-s 1"
grep -q '^bundle: warm copy' "$work/warm.log" || { echo "error: the warm run installed the bundle again" >&2; exit 1; }

echo "== what the cold run imported"
"$work/venv/bin/python" - "$work/cold/acceptance/acceptance.json" "$work/site" "$work/venv" "$repo" <<'EOF'
import json
import sys

report_file, site, venv, repo = sys.argv[1:]
report = json.loads(open(report_file).read())
bundle, machine, elsewhere = [], [], []
for dist, text in report["imported"].items():
    version, _, where = text.partition(" (")
    if where.rstrip(")/") == repo.rstrip("/"):
        continue  # this checkout itself (vf3d.egg-info of an editable install here)
    (bundle if where.startswith(site) else machine if where.startswith(venv) else elsewhere).append(f"{dist} {version}")
print("from the bundle: ", ", ".join(bundle))
print("from the machine:", ", ".join(name for name in machine if not name.startswith(("nvidia", "cuda"))))
problems = [f"imported from outside the emulated machine: {', '.join(elsewhere)}"] if elsewhere else []
for key, status in report["plan"].items():
    error = report["results"].get(key, {}).get("error", "")
    if status != "ok" and not (key.endswith("offload=model") and "the device is the CPU" in error):
        problems.append(f"{key}: {status} {error or report['skipped'].get(key, '')}")
print(f"Python {report['python']}, torch {report['torch']}")
if problems:
    sys.exit("error:\n  " + "\n  ".join(problems))
print("every stage ran in the emulated GPU machine")
EOF
