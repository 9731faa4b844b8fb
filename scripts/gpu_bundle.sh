#!/usr/bin/env bash
# scripts/gpu_bundle.sh [DIR]: download, with pip, the wheels the GPU acceptance run (scripts/gpu_acceptance.py)
# needs on the lent GPU machine and does not find there, into DIR (default gpu_bundle/, git-ignored).
#
# That machine has Python 3.12 with torch 2.11, transformers, peft, accelerate, safetensors, timm (so torchvision),
# opencv, pandas and scipy, and nothing fetched at run time. What the run imports beyond that (traced with
# scripts/emulate_gpu_machine.sh, which runs every stage with only those packages plus this bundle):
#   diffusers               every model stage (FLUX, ControlNet, CogVideoX, schedulers, offloading)
#   requests, urllib3,      diffusers checks the `requests` distribution when it is imported
#   charset-normalizer      (idna and certifi come with transformers' huggingface_hub/httpx)
#   torchmetrics,           metrics stage: LPIPS, PSNR, SSIM (lightning-utilities: imported by torchmetrics)
#   lightning-utilities
#   pyiqa                   metrics stage: MUSIQ. --no-deps: of its declared dependencies the MUSIQ path imports
#                           only torch, torchvision, numpy, PIL, yaml, tqdm and (from pyiqa.utils) cv2, all on the
#                           machine; datasets, tensorboard, bitsandbytes, facexlib, openai-clip, pre-commit,
#                           pytest, ruff, yapf, ... are never imported
# Not needed there and not bundled: dagster, bpy, PyAV (av), imageio-ffmpeg (the run writes no video).
# Every pin is requirements.lock's own. All are pure-Python wheels (py3-none-any: the same files serve CPython 3.12
# there and in the emulation, and 3.11 here); pip checks that each installs on CPython 3.12 manylinux x86_64
# offline. One version each, no dependencies; at most 48 MiB in all (the whole working tree travels in 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=(
  diffusers==0.42.1
  requests==2.34.2
  urllib3==2.8.0
  charset-normalizer==3.5.2
  torchmetrics==1.9.0
  lightning-utilities==0.15.3
  pyiqa==0.1.16
)
LIMIT_MIB=48
dir=${1:-gpu_bundle}
mkdir -p "$dir"
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
case "$(realpath "$dir")/" in
  "$top"/*)
    if [ -n "$top" ] && ! git check-ignore -q "$dir/bundle.whl"; then
      echo "error: $dir is inside this repository and not git-ignored (add it to .gitignore): wheels are not committed" >&2
      exit 2
    fi;;
esac
# wheels this script did not write (not listed in DIR's SHA256SUMS) are someone else's: refuse, before any work
for wheel in "$dir"/*.whl; do
  [ -e "$wheel" ] || continue
  if ! { [ -f "$dir/SHA256SUMS" ] && grep -q -- "  ${wheel##*/}\$" "$dir/SHA256SUMS"; }; then
    echo "error: $wheel was not written by gpu_bundle.sh (not in $dir/SHA256SUMS): choose an empty or bundle folder" >&2
    exit 2
  fi
done
pip=(${PIP:-})
if [ ${#pip[@]} = 0 ]; then
  if [ -x .venv/bin/python ]; then pip=(.venv/bin/python -m pip); else pip=(python3 -m pip); fi
fi
incoming=$(mktemp -d "$dir/.incoming.XXXXXX")
trap 'rm -rf "$incoming"' EXIT
quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }  # this host's pip config
# pure-Python wheels only (py3-none-any: charset-normalizer has a compiled cp312 one too, not wanted)
quiet "${pip[@]}" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation py --abi none --platform any --dest "$incoming" "${BUNDLE[@]}"
# and what the GPU machine's pip will see: every wheel installs on CPython 3.12, manylinux x86_64, offline
quiet "${pip[@]}" install --quiet --disable-pip-version-check --dry-run --ignore-installed --no-deps --no-index \
  --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 \
  --target "$incoming/target" "$incoming"/*.whl
count=$(find "$incoming" -maxdepth 1 -name '*.whl' | wc -l)
names=$(find "$incoming" -maxdepth 1 -name '*.whl' -printf '%f\n' | cut -d- -f1 | tr 'A-Z-.' 'a-z__' | sort -u | wc -l)
if [ "$count" != "${#BUNDLE[@]}" ] || [ "$names" != "$count" ]; then
  echo "error: expected ${#BUNDLE[@]} wheels, one per project; got $count for $names projects:" >&2
  ls "$incoming" >&2
  exit 1
fi
bytes=$(find "$incoming" -maxdepth 1 -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s}')
mib=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
find "$incoming" -maxdepth 1 -name '*.whl' -printf '%10s  %f\n' | sort -k2
if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "error: the bundle is $mib MiB, over $LIMIT_MIB MiB; $dir is left as it was" >&2
  exit 1
fi
# replace the previous bundle's wheels only (those its SHA256SUMS lists, checked above), nothing else in DIR
if [ -f "$dir/SHA256SUMS" ]; then
  awk '{print $2}' "$dir/SHA256SUMS" | while read -r name; do rm -f -- "$dir/$name"; done
fi
mv "$incoming"/*.whl "$dir"/
(cd "$dir" && sha256sum -- *.whl > .SHA256SUMS.tmp && mv .SHA256SUMS.tmp SHA256SUMS)
echo "gpu bundle: $count wheels, $mib MiB in $dir (limit $LIMIT_MIB MiB)"
