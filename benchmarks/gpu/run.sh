#!/usr/bin/env bash
# The GPU validation suite's single entry point on the device machine (see benchmarks/gpu/README.md).
#
#   bash benchmarks/gpu/run.sh --stash-rtx     call 1: copy the carried .rtx/p1 (RTX libs chunk 1) to
#                                              $TMPDIR/lictrt-rtx, where it stays while the machine is warm
#   bash benchmarks/gpu/run.sh [suite args]    call 2: install the carried .whl/ wheels under $TMPDIR/site, then
#                                              python -m benchmarks.gpu.suite (results under $OUT)
#   bash benchmarks/gpu/run.sh --dry-run       on any machine: measures nothing, marks every figure "not measured"
#
# The whole command stays under the device tool's 10-minute limit: the suite plans inside --budget (530 s by
# default) and `timeout` stops it at 570 s at the latest; its JSON is rewritten after every section.
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

if [ "${1:-}" = "--stash-rtx" ]; then
  exec "$PY" -m benchmarks.gpu.rtx --stash-only
fi

SITE="$("$PY" -c "import tempfile; print(tempfile.gettempdir())")/site"  # the same temp folder Python uses
if compgen -G ".whl/*.whl" >/dev/null; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl; then
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "warning: installing .whl/*.whl failed; the e2e section will record why" >&2
  fi
fi

timeout -k 10 "${SUITE_TIMEOUT:-570}" "$PY" -m benchmarks.gpu.suite --budget "${SUITE_BUDGET:-530}" --out "$OUT" "$@" \
  2>&1 | tee "$OUT/suite.log"
