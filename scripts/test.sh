#!/usr/bin/env bash
# Set up if needed, then run the whole test suite. `.ci/run` runs exactly this.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# formatting and the lint rule set of pyproject.toml
.venv/bin/ruff format --check --quiet . || { echo "ruff format would change the files above" >&2; exit 1; }
.venv/bin/ruff check --quiet .
# the layers (core <- pipeline <- model, model through pipeline.api only): .importlinter
.venv/bin/lint-imports --no-cache
.venv/bin/python scripts/check_import_cycles.py
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "${@:-tests}"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$status"
