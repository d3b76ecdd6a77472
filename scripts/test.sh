#!/usr/bin/env bash
# Install everything, then run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p artifacts
echo "[test] running the test suite (screenshots and other artefacts go to artifacts/)"
exec .venv/bin/python -m pytest "$@"
