#!/usr/bin/env bash
# Install everything, then start the whole terminal on emulated devices.
# With a display: the kiosk in a window (pass --fullscreen for full screen).
# Without one: the terminal runs headless and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=(--emulated)
if [[ ${1:-} == --fullscreen ]]; then shift; else args+=(--window 1280x800); fi
if [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} ]]; then
  echo "[start] no display found (DISPLAY is not set): starting the terminal headless on emulated devices"
  args=(--emulated --headless)
fi
echo "[start] python main.py ${args[*]} $*"
exec .venv/bin/python main.py "${args[@]}" "$@"
