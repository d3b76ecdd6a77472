#!/usr/bin/env bash
# Install everything, then run every test. Extra arguments go to one plain pytest run instead
# (e.g. scripts/test.sh tests/test_visit.py -x).
#
# Two parts: most tests on two workers (pytest-xdist, a test file per worker at a time), then
# the SOLO ones alone: they drive the screen under Xvfb, count a watchdog's pings or count the
# process's own threads and descriptors, and a second worker (its load, or earlier modules'
# leftovers in the same process) would make them measure the machine, not the kiosk.
SOLO=(tests/faults/test_device_faults.py tests/test_deploy.py tests/ui)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p artifacts
echo "[test] running the test suite (screenshots and other artefacts go to artifacts/)"
if (( $# )); then
  exec .venv/bin/python -m pytest "$@"
fi
workers=$(( $(nproc) >= 2 ? 2 : 1 ))
status=0
echo "[test] part 1 of 2: the tests that can share the machine, on $workers workers"
.venv/bin/python -m pytest -n "$workers" --dist loadfile "${SOLO[@]/#/--ignore=}" || status=$?
echo "[test] part 2 of 2: the tests that need the machine to themselves: ${SOLO[*]}"
.venv/bin/python -m pytest "${SOLO[@]}" || status=$((status ? status : $?))
# pytest's own codes: 1 tests failed, 5 no test ran (a part that selected nothing fails too)
(( status == 0 )) && echo "[test] both parts passed" || echo "[test] FAILED (pytest exit $status)" >&2
exit "$status"
