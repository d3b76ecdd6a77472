#!/usr/bin/env bash
# Install everything the terminal and its tests need on Debian 12: system packages,
# a virtual environment in .venv and the Python packages. Safe to run again: it only
# installs what is missing and says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc          # Python and building wheels that compile
  xvfb xauth xdotool                            # a virtual screen for the UI tests
  libgl1 libgl1-mesa-dri libegl1 libgles2 libmtdev1   # Kivy's OpenGL (Mesa software GL)
  espeak-ng libespeak-ng1 alsa-utils            # speech for the voice prompts (aplay plays them)
  fonts-wqy-microhei fonts-droid-fallback       # Simplified-Chinese fonts: the screens, and rare characters in printed names
  postgresql                                    # the reference platform's PostgreSQL tests
  cups cups-client cups-bsd printer-driver-cups-pdf libcups2-dev   # the A4 printer (and its PDF test queue)
  sane-utils libsane1 libsane-dev               # document scanners (and SANE's test backend)
  pcscd libpcsclite-dev vsmartcard-vpcd         # smart cards over PC/SC (and the virtual reader for tests)
  util-linux                                    # unshare: the virtual reader's private network namespace
  systemd x11-xserver-utils                     # systemd-analyze (the units are verified) and xset (the kiosk session)
  mosquitto mosquitto-clients                   # the fleet channel's MQTT broker (the help desk)
  chromium chromium-driver                      # the help-desk console's browser tests (headless)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  [[ $pkg == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  say "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "system packages: all present"
fi

PY=""
for candidate in python3.11 python3.12 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
    PY=$candidate; break
  fi
done
[[ -n $PY ]] || { echo "[setup] Python 3.11 or 3.12 is needed (Debian 12: apt-get install python3)" >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  say "creating the virtual environment .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f $stamp ]]; then
  say "installing Python packages from pyproject.toml (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # the dependencies (and the test extra) from pyproject.toml; the terminal itself runs from
  # this folder and needs no installing
  mapfile -t requirements < <(.venv/bin/python -c 'import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))')
  .venv/bin/python -m pip install -q "${requirements[@]}"
  rm -f .venv/.installed-*
  touch "$stamp"
else
  say "Python packages: up to date"
fi

# Face photos for the emulated camera and the face-verification tests. None is committed:
# they are published packages' own test images, fetched once from the package registry:
# face_recognition 1.3.0 (three people's photos are U.S. government works) and
# scikit-image's "astronaut" (NASA, public domain).
FACES=var/testdata/faces
if [[ ! -f $FACES/.complete ]]; then
  say "fetching test face photos (face_recognition 1.3.0 source package) into $FACES"
  mkdir -p var/testdata/download "$FACES"
  .venv/bin/python -m pip download -q --no-deps --no-binary :all: -d var/testdata/download "face_recognition==1.3.0"
  .venv/bin/python -m pip download -q --no-deps --only-binary :all: -d var/testdata/download "scikit-image==0.26.0"
  .venv/bin/python - <<'PY'
import tarfile
import zipfile
from pathlib import Path

archive = next(Path("var/testdata/download").glob("face_recognition-1.3.0.tar.gz"))
with tarfile.open(archive) as tar:
    for member in tar.getmembers():
        name = Path(member.name)
        if name.parent.name == "test_images" and name.suffix == ".jpg":
            (Path("var/testdata/faces") / name.name).write_bytes(tar.extractfile(member).read())
wheel = next(Path("var/testdata/download").glob("scikit_image-0.26.0-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    (Path("var/testdata/faces") / "astronaut.png").write_bytes(zf.read("skimage/data/astronaut.png"))
PY
  touch "$FACES/.complete"
else
  say "test face photos: present"
fi
