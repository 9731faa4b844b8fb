#!/usr/bin/env bash
# Create .venv with the pinned stack (requirements.lock) and install vf3d in it. Safe to rerun:
# it only installs when pyproject.toml or requirements.lock changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.vf3d-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the pinned stack into .venv (a few minutes the first time)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
  echo "$want" > "$stamp"
fi
# Headless Chromium for the browser test of the UI (tests/test_ui_browser.py): Debian's chromium and
# chromium-driver (Playwright drives /usr/bin/chromium; its own browser download is not used); libegl1 for
# Blender's Workbench engine, which the HED-input comparison test renders with (tests/test_hed_input.py).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! ldconfig -p | grep -q libEGL.so.1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium and chromium-driver (apt-get) for the UI browser test..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver libegl1 \
           >/dev/null; }; then
      echo "warning: apt-get could not install chromium; tests/test_ui_browser.py will fail" >&2
    fi
  else
    echo "note: /usr/bin/chromium or /usr/bin/chromedriver is missing and this is not root: run" \
         "'sudo apt-get install -y chromium chromium-driver libegl1' or tests/test_ui_browser.py will fail" >&2
  fi
fi
