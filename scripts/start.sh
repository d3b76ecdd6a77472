#!/usr/bin/env bash
# Install everything, start the local reference platform, enrol this terminal with it
# (once), then start the whole terminal on emulated devices.
# With a display: the kiosk in a 1280x800 window (pass --fullscreen for full screen).
# Without one: the terminal runs headless and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

PY=.venv/bin/python
DATA=${KIOSK_DEMO_DIR:-var/demo}
PORT=${GOVPLATFORM_PORT:-8780}
URL="http://127.0.0.1:$PORT"
export GOVPLATFORM_DATA_DIR="$DATA/platform"
export KIOSK__TERMINAL__ID=${KIOSK__TERMINAL__ID:-DEMO-0001}
export KIOSK__TERMINAL__LOCATION=${KIOSK__TERMINAL__LOCATION:-演示终端（本机）}
[[ $DATA == /* ]] || DATA="$PWD/$DATA"  # KIOSK_DEMO_DIR may be relative or absolute
export KIOSK__TERMINAL__DATA_DIR="$DATA/terminal"
export KIOSK__PLATFORM__URL="$URL"
mkdir -p "$DATA"
# a new platform database knows no terminal: enrol again even if a key is left over
NEW_PLATFORM=0; [[ -d $GOVPLATFORM_DATA_DIR ]] || NEW_PLATFORM=1

echo "[start] starting the reference platform on $URL (data in $GOVPLATFORM_DATA_DIR)"
$PY -m govplatform serve --port "$PORT" > "$DATA/platform.log" 2>&1 &
PLATFORM_PID=$!
trap 'kill "$PLATFORM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if $PY -c "import requests,sys; requests.get('$URL/v1/health', timeout=1).raise_for_status()" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$PLATFORM_PID" 2>/dev/null; then
    echo "[start] the platform did not start; its log ($DATA/platform.log) says:" >&2
    tail -n 20 "$DATA/platform.log" >&2
    exit 1
  fi
  sleep 0.2
done

if [[ $NEW_PLATFORM == 1 || ! -f "$KIOSK__TERMINAL__DATA_DIR/keys/terminal.key" ]]; then
  echo "[start] enrolling terminal $KIOSK__TERMINAL__ID with the platform"
  CODE=$($PY -m govplatform enrolment-code --terminal-id "$KIOSK__TERMINAL__ID" 2>/dev/null)
  $PY -m provisioning enrol --force --code "$CODE"
else
  echo "[start] terminal $KIOSK__TERMINAL__ID is already enrolled"
fi

args=(--emulated)
if [[ ${1:-} == --fullscreen ]]; then shift; else args+=(--window 1280x800); fi
if [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} ]]; then
  echo "[start] no display found (DISPLAY is not set): starting the terminal headless on emulated devices"
  args=(--emulated --headless)
fi
echo "[start] python main.py ${args[*]} $*"
$PY main.py "${args[@]}" "$@"
