#!/usr/bin/env bash
# The GPU validation suite's single entry point on the device machine (see benchmarks/gpu/README.md).
#
#   bash benchmarks/gpu/run.sh            call 1: stash the carried .rtx/p1 (RTX libs chunk 1) in $TMPDIR/lictrt-rtx,
#                                         install the carried .whl/ wheels under $TMPDIR/site, run every section but
#                                         rtx (planned inside 400 s, stopped at 430 s)
#   bash benchmarks/gpu/run.sh --rtx      call 2, right after call 1 (a machine stays warm 30 s): the rtx section from
#                                         the carried .rtx/p2 and the stash, added to call 1's document (150 s, stopped
#                                         at 170 s)
#   bash benchmarks/gpu/run.sh --dry-run  on any machine: measures nothing, marks every figure "not measured"
# Further arguments go to python -m benchmarks.gpu.suite; results land under $OUT (the JSON is rewritten after
# every section, so a run stopped at its limit still returns what it measured).
set -u -o pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
export OUT="${OUT:-$PWD/gpu-suite-out}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if ! command -v nvcc >/dev/null 2>&1; then  # CMake needs nvcc on PATH to enable CUDA
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
SITE="$("$PY" -c "import tempfile; print(tempfile.gettempdir())")/site"  # the same temp folder Python uses

if [ "${1:-}" = "--rtx" ]; then
  shift
  set -- --sections environment,rtx --resume --budget "${SUITE_BUDGET:-150}" "$@"
  limit="${SUITE_TIMEOUT:-170}"
else
  if [ -d .rtx/p1 ]; then
    "$PY" -m benchmarks.gpu.rtx --stash-only || echo "warning: stashing .rtx/p1 failed; the rtx call will say why" >&2
  fi
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl ||
      echo "warning: installing .whl/*.whl failed; the codec section will record why" >&2
  fi
  set -- --skip rtx --budget "${SUITE_BUDGET:-400}" "$@"
  limit="${SUITE_TIMEOUT:-430}"
fi
if [ -d "$SITE" ]; then export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"; fi

timeout -k 10 "$limit" "$PY" -m benchmarks.gpu.suite --out "$OUT" "$@" 2>&1 | tee "$OUT/suite.log"
