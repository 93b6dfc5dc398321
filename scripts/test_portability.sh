#!/usr/bin/env bash
# Portability check: the numeric tests (those checking a model-measured figure through the
# `figure` fixture, pytest marker `numeric`) under each CPU variant this machine can run
# (CTranslate2 ISAs and GEMM backend, torch/oneDNN/MKL baseline ISAs, 1 thread instead of 2, an
# MP3 round trip of the bundled sample), then every figure's spread against its bound:
#   figure, variants, min, max, bound, margin (distance from the worst value to the bound).
# Run it before resolving an issue that adds or moves a numeric bound; set bounds outside the
# spread it prints, with the margin written beside them.
#
# Usage: bash scripts/test_portability.sh [pytest args]        (default: -m numeric tests)
#   PORTABILITY_VARIANTS=default,ct2-generic  only these variants (names: see below / --help)
#   PORTABILITY_OUT=dir                      keep figures.jsonl and the logs there
#   VENV=path                                the environment (as scripts/setup.sh; default .venv)
# Exit status: 0 when every variant passed and no figure broke its bound.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,14p' "$0"
  echo "Variants here:"
  python3 scripts/portability.py variants | sed 's/^/  /'
  exit 0
fi
bash scripts/setup.sh >/dev/null
venv=${VENV:-.venv}
python=$(cd "$venv" && pwd)/bin/python
out=${PORTABILITY_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/portability.XXXXXX")}
mkdir -p "$out"
figures=$out/figures.jsonl
: >"$figures"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-m numeric tests)

# a copy of the working tree (tracked and untracked files) whose sample is re-encoded
reencoded_tree() {
  local root=$out/reencoded
  rm -rf "$root" && mkdir -p "$root/tree"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | xargs -0 cp --parents -t "$root/tree"
  "$python" scripts/portability.py reencode pipeline/assets/sample.wav \
    "$root/tree/pipeline/assets/sample.wav" >&2
  echo "$root/tree"
}

failed=()
while IFS=$'\t' read -r name assignments; do
  if [ -n "${PORTABILITY_VARIANTS:-}" ] && [[ ",$PORTABILITY_VARIANTS," != *",$name,"* ]]; then
    continue
  fi
  dir=$repo
  [ "$name" = reencoded ] && dir=$(reencoded_tree)
  echo "=== $name ${assignments:-(nothing forced)}"
  started=$(date +%s)
  set +e
  # shellcheck disable=SC2086  # assignments are VAR=value words
  (cd "$dir" && env $assignments PORTABILITY_VARIANT="$name" PORTABILITY_FIGURES="$figures" \
    "$python" -m pytest -q -p no:cacheprovider "${args[@]}" >"$out/$name.log" 2>&1)
  status=$?
  set -e
  tail -n 1 "$out/$name.log"
  echo "    ($(($(date +%s) - started)) s, exit $status, log $out/$name.log)"
  [ "$status" -eq 0 ] || failed+=("$name")
done < <("$python" scripts/portability.py variants)

echo
set +e
"$python" scripts/portability.py table "$figures"
broken=$?
set -e
echo
echo "figures: $figures"
if [ ${#failed[@]} -gt 0 ]; then
  echo "variants with failing tests: ${failed[*]}" >&2
  exit 1
fi
exit "$broken"
