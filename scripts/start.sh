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
PIDS=("$PLATFORM_PID")
# whatever ends this script (the kiosk stopped, Ctrl-C, a kill) stops what it started
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
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

# The remote help desk (远程帮办): a fleet broker (mosquitto, TLS, an account per terminal), the
# help-desk console on http://127.0.0.1:8790 with one demo supervisor, and this terminal
# connected to both. KIOSK_DEMO_HELPDESK=0 leaves them out.
if [[ ${KIOSK_DEMO_HELPDESK:-1} == 1 ]]; then
  FLEET="$DATA/fleet"; DESK="$DATA/helpdesk"; BROKER_PORT=${FLEET_BROKER_PORT:-8883}
  DESK_PORT=${HELPDESK_PORT:-8790}
  if [[ ! -f $FLEET/broker/mosquitto.conf ]]; then
    echo "[start] making the fleet broker's CA, certificate and accounts in $FLEET"
    $PY -m fleet init --folder "$FLEET/broker" --name localhost --name 127.0.0.1 --listen 127.0.0.1 \
      --port "$BROKER_PORT" >/dev/null
    $PY -m fleet add-console --folder "$FLEET/broker" --out "$FLEET/console-password" >/dev/null
    $PY -m fleet add-terminal "$KIOSK__TERMINAL__ID" --folder "$FLEET/broker" --out "$FLEET/terminal" >/dev/null
  fi
  echo "[start] starting the fleet broker (mosquitto) on 127.0.0.1:$BROKER_PORT (log: $FLEET/broker.log)"
  $PY -m fleet serve --folder "$FLEET/broker" --host 127.0.0.1 --port "$BROKER_PORT" > "$FLEET/broker.log" 2>&1 &
  PIDS+=($!)
  if [[ ! -f $DESK/console-key.json ]]; then
    mkdir -p "$DESK"
    $PY -m helpdesk keygen --data "$DESK" > "$DESK/terminal-settings.toml"
    DEMO_PASSWORD=$($PY -c 'import secrets; print(secrets.token_urlsafe(12))')
    printf '%s\n' "$DEMO_PASSWORD" | $PY -m helpdesk add-staff demo --role supervisor --display-name 演示坐席 \
      --data "$DESK" >/dev/null
    (umask 077; printf 'name: demo\npassword: %s\n' "$DEMO_PASSWORD" > "$DESK/demo-login.txt")
  fi
  echo "[start] starting the help-desk console on http://127.0.0.1:$DESK_PORT (log: $DESK/console.log)"
  $PY -m helpdesk serve --data "$DESK" --broker-host 127.0.0.1 --broker-port "$BROKER_PORT" \
    --ca-file "$FLEET/broker/ca.pem" --account-password-file "$FLEET/console-password" \
    --port "$DESK_PORT" > "$DESK/console.log" 2>&1 &
  PIDS+=($!)
  echo "[start] help-desk login: $(tr '\n' ' ' < "$DESK/demo-login.txt")(kept in $DESK/demo-login.txt)"
  export KIOSK__FLEET__ENABLED=true KIOSK__FLEET__BROKER_HOST=127.0.0.1 KIOSK__FLEET__BROKER_PORT="$BROKER_PORT"
  export KIOSK__FLEET__CA_FILE="$FLEET/terminal/fleet-ca.pem"
  export KIOSK__FLEET__PASSWORD_FILE="$FLEET/terminal/fleet-password"
  # the lines keygen printed are TOML (`console_public_key = "..."`): the quoted values as they are
  KIOSK__FLEET__CONSOLE_PUBLIC_KEY=$(sed -n 's/^console_public_key = //p' "$DESK/terminal-settings.toml")
  KIOSK__FLEET__CONSOLE_ALGORITHM=$(sed -n 's/^console_algorithm = //p' "$DESK/terminal-settings.toml")
  export KIOSK__FLEET__CONSOLE_PUBLIC_KEY KIOSK__FLEET__CONSOLE_ALGORITHM
fi

args=(--emulated)
if [[ ${1:-} == --fullscreen ]]; then shift; else args+=(--window 1280x800); fi
if [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} ]]; then
  echo "[start] no display found (DISPLAY is not set): starting the terminal headless on emulated devices"
  args=(--emulated --headless)
fi
echo "[start] python main.py ${args[*]} $*"
# in the background with our stdin (the emulator console reads it), so a TERM to this script
# stops the kiosk and everything above through the traps
$PY main.py "${args[@]}" "$@" <&0 &
KIOSK_PID=$!
PIDS+=("$KIOSK_PID")
wait "$KIOSK_PID"
