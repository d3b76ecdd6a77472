#!/usr/bin/env bash
# Install the kiosk on a terminal (Debian 12 with systemd), as root, from this checkout:
#
#   sudo bash deploy/install.sh --dry-run     # print every step, change nothing
#   sudo bash deploy/install.sh               # do it; safe to run again (updates in place)
#   sudo bash deploy/install.sh --app-dir /srv/kiosk --user kiosk
#   --skip-packages: no apt-get (offline; the packages are there)   --skip-setup: no scripts/setup.sh
#
# What it does, in order (deploy/README.md explains the design):
#   1. system packages: the X server and xinit for the kiosk session, and what
#      scripts/setup.sh installs (installed here as root, so setup.sh need not)
#   2. the user `kiosk`: no password (nobody can log in as it; getty logs it in on tty1),
#      in the groups for the devices: dialout video plugdev lp scanner audio render
#   3. the program in /opt/kiosk (--app-dir): a root-owned copy of this checkout without
#      .venv, .git, var and artifacts (run from the app dir itself to use a checkout in place); the old
#      copy's .venv and var are kept; kiosk.service is stopped meanwhile if it runs
#   4. scripts/setup.sh run as the kiosk user (it owns .venv and var of the app dir only)
#   5. /etc/kiosk/terminal.toml (written only when missing: data_dir = /var/lib/kiosk) and
#      /var/lib/kiosk for the terminal's keys, outbox and log
#   6. the session: getty@tty1 auto-login drop-in, ~kiosk/.xinitrc, a block in
#      ~kiosk/.bash_profile that starts X on tty1, /etc/X11/xorg.conf.d/10-kiosk.conf
#   7. the units: kiosk.service, kiosk-retry.service (and backoff.conf on systemd >= 254),
#      systemctl daemon-reload, systemctl enable kiosk.service
#   8. a kiosk that was running is restarted; otherwise: reboot (or see the last lines)
#
# Then enrol the terminal (README: "Installing on a terminal"). Exit codes: 0 done, 1 a step
# failed (the line above says which), 2 bad arguments or not root.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP=/opt/kiosk
KIOSK_USER=kiosk
DRY=0
SKIP_PACKAGES=0
SKIP_SETUP=0
DATA_DIR=/var/lib/kiosk
CONFIG=/etc/kiosk/terminal.toml
UNIT_DIR=/etc/systemd/system
GROUPS_WANTED=(dialout video plugdev lp scanner audio render)
# Xorg with its built-in modesetting driver and libinput (touchscreens), startx, xset/xsetroot;
# libpam-systemd gives the auto-login a logind session, which rootless Xorg needs for the GPU
# and input devices
SESSION_PACKAGES=(xserver-xorg-core xserver-xorg-input-libinput xinit x11-xserver-utils xauth libpam-systemd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --dry-run|-n) DRY=1 ;;
    --skip-packages) SKIP_PACKAGES=1 ;;
    --skip-setup) SKIP_SETUP=1 ;;
    --app-dir) APP=${2:?--app-dir needs a folder}; shift ;;
    --app-dir=*) APP=${1#*=} ;;
    --user) KIOSK_USER=${2:?--user needs a name}; shift ;;
    --user=*) KIOSK_USER=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $APP == /* ]] || { echo "install: --app-dir must be an absolute path, not '$APP'" >&2; exit 2; }
APP=${APP%/}
[[ $KIOSK_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || { echo "install: bad user name '$KIOSK_USER'" >&2; exit 2; }
KIOSK_HOME=$(getent passwd "$KIOSK_USER" | cut -d: -f6 || true)
KIOSK_HOME=${KIOSK_HOME:-/home/$KIOSK_USER}

STEP=0
BOLD=""; PLAIN=""; [[ -t 1 ]] && { BOLD=$'\033[1m'; PLAIN=$'\033[0m'; }
step() { STEP=$((STEP + 1)); printf '%s[install] step %d:%s %s\n' "$BOLD" "$STEP" "$PLAIN" "$*"; }
note() { printf '[install]   %s\n' "$*"; }
shown() { local arg out=(); for arg; do [[ $arg =~ ^[A-Za-z0-9_./:=,@+-]+$ ]] && out+=("$arg") || out+=("'$arg'"); done; echo "${out[*]}"; }
# run CMD...: print it, and run it unless --dry-run
run() {
  if ((DRY)); then note "would run: $(shown "$@")"; else note "+ $(shown "$@")"; "$@"; fi
}
# put DEST MODE OWNER: write stdin to DEST (only when its content differs)
put() {
  local dest=$1 mode=$2 owner=$3 content tmp
  content=$(cat; echo .)  # keeps trailing newlines
  content=${content%.}
  if [[ -f $dest ]] && cmp -s <(printf '%s' "$content") "$dest"; then
    note "unchanged: $dest"
  elif ((DRY)); then
    note "would write: $dest ($(printf '%s' "$content" | wc -l) lines, mode $mode, owner $owner)"
  else
    note "writing: $dest"
    tmp=$(mktemp)
    printf '%s' "$content" >"$tmp"
    install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$dest"
    rm -f "$tmp"
  fi
}
# the unit files with this installation's paths and user
render() {
  sed -e "s#/opt/kiosk#$APP#g" -e "s#/home/kiosk#$KIOSK_HOME#g" \
      -e "s#^User=kiosk\$#User=$KIOSK_USER#" -e "s#^Group=kiosk\$#Group=$KIOSK_USER#" \
      -e "s#--autologin kiosk #--autologin $KIOSK_USER #" "$1"
}
is_active() { systemctl is-active --quiet "$1" 2>/dev/null; }

((DRY)) && note "dry run: nothing is changed, every step is printed"
if [[ $(id -u) -ne 0 ]]; then
  if ((DRY)); then note "not root: a real run needs root (sudo bash deploy/install.sh)"
  else echo "install: run as root (sudo bash deploy/install.sh), or try --dry-run" >&2; exit 2; fi
fi
[[ -d /run/systemd/system ]] || note "warning: systemd is not running here (a container?): units are installed, nothing is started"
[[ -f $SRC/main.py && -f $SRC/scripts/setup.sh ]] || { echo "install: $SRC is not the kiosk's checkout" >&2; exit 2; }
IN_PLACE=0; [[ $(realpath -m "$APP") == "$(realpath -m "$SRC")" ]] && IN_PLACE=1
WAS_ACTIVE=0; is_active kiosk.service && WAS_ACTIVE=1

# -- 1 --------------------------------------------------------------------------------------
step "system packages (X session, and those scripts/setup.sh needs)"
mapfile -t setup_packages < <(bash -c 'eval "$(sed -n "/^APT_PACKAGES=(/,/^)/p" "$1")"; printf "%s\n" "${APT_PACKAGES[@]}"' _ "$SRC/scripts/setup.sh")
((${#setup_packages[@]})) || { echo "install: no APT_PACKAGES list found in scripts/setup.sh" >&2; exit 1; }
missing=()
for pkg in "${SESSION_PACKAGES[@]}" "${setup_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} && SKIP_PACKAGES)); then
  note "--skip-packages: not installing the missing ${missing[*]}"
elif ((${#missing[@]})); then
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  note "all present: ${SESSION_PACKAGES[*]} ${setup_packages[*]}"
fi

# -- 2 --------------------------------------------------------------------------------------
step "user $KIOSK_USER (no password, device groups)"
if id -u "$KIOSK_USER" >/dev/null 2>&1; then
  note "user $KIOSK_USER exists (home $KIOSK_HOME)"
else
  # useradd leaves the password locked ("!"): no login with a password, anywhere
  run useradd --create-home --home-dir "$KIOSK_HOME" --shell /bin/bash --user-group \
      --comment "self-service kiosk" "$KIOSK_USER"
fi
groups_ok=()
for group in "${GROUPS_WANTED[@]}"; do
  if getent group "$group" >/dev/null; then groups_ok+=("$group")
  else note "group $group does not exist here (its package is not installed): skipped"; fi
done
((${#groups_ok[@]})) && run usermod -a -G "$(IFS=,; echo "${groups_ok[*]}")" "$KIOSK_USER"

# -- 3 --------------------------------------------------------------------------------------
step "the program in $APP"
if ((IN_PLACE)); then
  note "installing from $APP itself: the checkout is used in place"
else
  if ((WAS_ACTIVE)); then run systemctl stop kiosk.service; fi
  run install -d -m 0755 "$(dirname "$APP")"
  run rm -rf "$APP.new"
  run install -d -m 0755 "$APP.new"
  if ((DRY)); then
    note "would copy: $SRC -> $APP.new (without .git, .venv and other dot folders, var, artifacts, __pycache__), owned by root"
  else
    note "copying $SRC -> $APP.new"
    tar -C "$SRC" --exclude='./.*' --exclude=./var --exclude=./artifacts \
        --exclude=__pycache__ --exclude='*.egg-info' -cf - . |
      tar -C "$APP.new" --no-same-owner -xf -
    chmod -R u=rwX,go=rX "$APP.new"
  fi
  for keep in .venv var; do  # the virtual environment and fetched test data survive an update
    if [[ -d $APP/$keep ]]; then run mv "$APP/$keep" "$APP.new/$keep"; fi
  done
  if [[ -d $APP ]]; then run rm -rf "$APP.old"; run mv "$APP" "$APP.old"; fi
  run mv "$APP.new" "$APP"
  run rm -rf "$APP.old"
fi
# what setup.sh writes, and only that, belongs to the kiosk user
run install -d -o "$KIOSK_USER" -g "$KIOSK_USER" -m 0755 "$APP/.venv" "$APP/var"
if ((!DRY)) && ! runuser -u "$KIOSK_USER" -- test -r "$APP/main.py"; then
  echo "install: user $KIOSK_USER cannot read $APP/main.py: put the app where it can (e.g. /opt/kiosk)" >&2
  exit 1
fi

# -- 4 --------------------------------------------------------------------------------------
step "Python environment: scripts/setup.sh as $KIOSK_USER"
if ((SKIP_SETUP)); then
  note "--skip-setup: scripts/setup.sh not run"
else
  run runuser -u "$KIOSK_USER" -- env -C "$APP" HOME="$KIOSK_HOME" bash scripts/setup.sh
  # byte-code for the root-owned program (the service cannot write it: ReadOnlyPaths)
  run "$APP/.venv/bin/python" -m compileall -q -x '/\.venv/|/var/' "$APP"
fi

# -- 5 --------------------------------------------------------------------------------------
step "configuration $CONFIG and data folder $DATA_DIR"
run install -d -m 0755 "$(dirname "$CONFIG")"
if [[ -f $CONFIG ]]; then
  data_dir=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("terminal", {}).get("data_dir", ""))' "$CONFIG" 2>/dev/null || echo "?")
  if [[ $data_dir != /* ]]; then
    echo "install: $CONFIG sets no absolute terminal.data_dir (found '${data_dir}'): the service" \
         "cannot write inside $APP. Fix: add data_dir = \"$DATA_DIR\" to its [terminal] table" >&2
    ((DRY)) || exit 1
  else
    note "$CONFIG exists (data_dir $data_dir): kept as it is"
  fi
else
  put "$CONFIG" 0640 "root:$KIOSK_USER" <<EOF
# This terminal's own settings: only the keys that differ from $APP/config/defaults.toml.
# Written by deploy/install.sh; edit, then: systemctl restart kiosk
[terminal]
data_dir = "$DATA_DIR"
EOF
fi
run install -d -o "$KIOSK_USER" -g "$KIOSK_USER" -m 0750 "$DATA_DIR"

# -- 6 --------------------------------------------------------------------------------------
step "the kiosk session: auto-login on tty1, X with no blanking"
render "$SRC/deploy/systemd/getty-autologin.conf" | put "$UNIT_DIR/getty@tty1.service.d/autologin.conf" 0644 root:root
put "$KIOSK_HOME/.xinitrc" 0755 "$KIOSK_USER:$KIOSK_USER" <"$SRC/deploy/session/xinitrc"
profile=$KIOSK_HOME/.bash_profile
{
  if [[ -f $profile ]]; then  # everything but an older kiosk block
    sed '/^# >>> kiosk session/,/^# <<< kiosk session <<</d' "$profile"
  elif [[ -f /etc/skel/.profile ]]; then
    cat /etc/skel/.profile  # bash reads .bash_profile instead of .profile: keep what it did
  fi
  cat "$SRC/deploy/session/bash_profile"
} | put "$profile" 0644 "$KIOSK_USER:$KIOSK_USER"
put /etc/X11/xorg.conf.d/10-kiosk.conf 0644 root:root <"$SRC/deploy/xorg/10-kiosk.conf"

# -- 7 --------------------------------------------------------------------------------------
step "systemd units"
render "$SRC/deploy/systemd/kiosk.service" | put "$UNIT_DIR/kiosk.service" 0644 root:root
render "$SRC/deploy/systemd/kiosk-retry.service" | put "$UNIT_DIR/kiosk-retry.service" 0644 root:root
systemd_version=$(systemctl --version 2>/dev/null | awk 'NR == 1 {print $2}')
if [[ ${systemd_version:-0} =~ ^[0-9]+$ ]] && ((systemd_version >= 254)); then
  put "$UNIT_DIR/kiosk.service.d/backoff.conf" 0644 root:root <"$SRC/deploy/systemd/backoff-v254.conf"
else
  note "systemd ${systemd_version:-unknown} (< 254): restart back-off by RestartSec, the start limit and kiosk-retry.service"
  if [[ -f $UNIT_DIR/kiosk.service.d/backoff.conf ]]; then run rm -f "$UNIT_DIR/kiosk.service.d/backoff.conf"; fi
fi
if [[ -d /run/systemd/system ]] || ((DRY)); then run systemctl daemon-reload; fi
[[ -d /run/systemd/system ]] || note "no running systemd here: a real run skips daemon-reload"
run systemctl enable kiosk.service
run systemctl enable getty@tty1.service
if [[ $(systemctl get-default 2>/dev/null || true) == graphical.target ]] && systemctl cat display-manager.service >/dev/null 2>&1; then
  note "warning: a display manager is enabled; it competes with the kiosk session for the screen:"
  note "  systemctl disable display-manager.service && systemctl set-default multi-user.target"
fi

# -- 8 --------------------------------------------------------------------------------------
step "start"
if ((WAS_ACTIVE)); then
  run systemctl restart kiosk.service
else
  note "the kiosk starts at the next boot: reboot, or now (this ends any login on tty1):"
  note "  systemctl restart getty@tty1.service && systemctl start kiosk.service"
fi
note "then enrol the terminal (README, \"Installing on a terminal\") and check: systemctl status kiosk"
((DRY)) && note "dry run finished: nothing was changed"
exit 0
