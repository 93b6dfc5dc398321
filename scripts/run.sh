#!/usr/bin/env bash
# Set up if needed, then curate: with no arguments the bundled sample goes to ./output.
# Usage: bash scripts/run.sh [beam_runner.py flags, e.g. --input 'calls/**/*.mp3' --output out/]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python beam_runner.py --runner=DirectRunner "$@"
