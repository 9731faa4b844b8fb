#!/usr/bin/env bash
# Set everything up and run the demo through Dagster (persistent instance in .vf3d/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vf3d demo "$@"
