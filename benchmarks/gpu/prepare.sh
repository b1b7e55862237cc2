#!/usr/bin/env bash
# CPU-side preparation of what the GPU suite's two device calls carry (see benchmarks/gpu/README.md).
# Everything lands in folders this script adds to the checkout's .git/info/exclude (never committed):
#   .gpu/lib/      liblictrt_kernels.so (sm_90) + the coder extension for Python 3.12    -> call 1 (suite)
#   .gpu/kodak/    8 Kodak PNGs from ../shared/data/kodak, when that folder exists        -> call 1
#   .whl/          compressai 1.2.8 (cp312 manylinux) + pytorch-msssim: the models' layers -> call 1
#   .rtx/p1/       TensorRT-RTX libs wheel, chunk 1 (what call 1 has room for)           -> call 1 (stashed)
#   .rtx/p2/       chunk 2 + the cp312 bindings wheel + rtx-manifest.json (sha256)       -> call 2 (rtx)
#   .rtx/bundles/  tiny fixed-size bundles (GDN and SelectiveScan2D bodies) with CPU-built RTX engines -> call 2
# Usage: bash benchmarks/gpu/prepare.sh [--no-bundles]     (re-running keeps existing bundles)
# KODAK_IMAGES (default 8) sets how many Kodak images call 1 carries; PYTHON312 names a Python 3.12 for the coder
# extension (else python3.12 on PATH or a pyenv one; without one the device builds it, in seconds).
set -euo pipefail
cd "$(dirname "$0")/../.."
RTX_VERSION=1.7.1.116
KODAK_IMAGES="${KODAK_IMAGES:-8}"  # the codec section times 4 per model by default; 8 leave room for --images 8
PY="${PYTHON:-python3}"

exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
for p in /.whl/ /.rtx/ /.gpu/; do
  grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >>"$exclude"
done

PLAT=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

echo "== .gpu/lib: the kernels library and the coder extension, built here for the device"
"$PY" -m benchmarks.gpu.prepare libs

if [ -d ../shared/data/kodak ]; then
  echo "== .gpu/kodak: the first $KODAK_IMAGES Kodak images from ../shared/data/kodak"
  rm -rf .gpu/kodak
  mkdir -p .gpu/kodak
  ls ../shared/data/kodak/*.png | sort | head -n "$KODAK_IMAGES" | xargs -I{} cp {} .gpu/kodak/
else
  echo "== .gpu/kodak: ../shared/data/kodak not found; the suite will use assets/images/kodak (3 images)"
fi

echo "== .whl: compressai for Python 3.12"
mkdir -p .whl
"$PY" -m pip download -q "${PLAT[@]}" -d .whl compressai==1.2.8 pytorch-msssim==1.0.0

if [ "${1:-}" != "--no-bundles" ]; then
  echo "== .rtx/bundles: tiny bundles + CPU-built TensorRT-RTX engines (minutes on a 2-core machine)"
  "$PY" -m benchmarks.gpu.prepare bundles --out .rtx/bundles
fi

echo "== .rtx: TensorRT-RTX $RTX_VERSION (libs split in two chunks, bindings for cp312)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q "${PLAT[@]}" -d "$tmp" "tensorrt_rtx_cu13_libs==$RTX_VERSION" \
  "tensorrt_rtx_cu13_bindings==$RTX_VERSION"
rm -rf .rtx/p1 .rtx/p2
mkdir -p .rtx/p1 .rtx/p2
cp "$tmp"/tensorrt_rtx_cu13_bindings-*.whl .rtx/p2/
"$PY" -m benchmarks.gpu.prepare split "$tmp"/tensorrt_rtx_cu13_libs-*.whl --part1-mib auto

echo "== what each device call carries"
"$PY" -m benchmarks.gpu.prepare sizes
