#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller (dist/lesionviewer/), then check it:
# no torch in the ONNX (CPU) build and no CUDA libraries in a CPU build, size on disk,
# the frozen self-test (offscreen and under Xvfb) and the start-up time against the source.
#
#   bash packaging/build.sh [self-test options, e.g. --models DIR --self-test-photos DIR]
#   LESIONVIEWER_BUILD_BACKEND=torch bash packaging/build.sh     (torch inside: the CUDA build)
#
# The default build runs the networks with ONNX Runtime: every model folder needs its
# model.onnx (lesion-train export-onnx MODEL_DIR).
# PYTHON picks the build environment (default .venv/bin/python; it needs the project and
# PyInstaller: pip install -e ".[package]"). Exit code: non-zero when the build, the CUDA
# check or a self-test fails. Build outputs (build/, dist/) are not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x "$PYTHON" ]] || PYTHON=python3
"$PYTHON" -m PyInstaller --version >/dev/null 2>&1 || {
  echo "build: PyInstaller is not installed for $PYTHON (pip install -e '.[package]')" >&2
  exit 2
}
export LESIONVIEWER_BUILD_BACKEND=${LESIONVIEWER_BUILD_BACKEND:-onnx}
if [[ $LESIONVIEWER_BUILD_BACKEND == onnx ]]; then
  TORCH_CUDA=""
  echo "== building with $("$PYTHON" --version), PyInstaller $("$PYTHON" -m PyInstaller --version)," \
    "ONNX Runtime $("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)') (CPU, no torch)"
else
  TORCH_CUDA=$("$PYTHON" -c "import torch; print(torch.version.cuda or '')")
  echo "== building with $("$PYTHON" --version), PyInstaller $("$PYTHON" -m PyInstaller --version)," \
    "torch $("$PYTHON" -c 'import torch; print(torch.__version__)') (${TORCH_CUDA:+CUDA $TORCH_CUDA}${TORCH_CUDA:-CPU})"
fi
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/lesionviewer.spec
echo "build: PyInstaller took $(( $(date +%s) - start )) s"
DIST=dist/lesionviewer
APP=$DIST/lesionviewer

status=0
cuda_libs=$(find "$DIST" \( -name 'libcudart*' -o -name 'libcublas*' -o -name 'libcudnn*' \
  -o -name 'libnccl*' -o -name 'libtorch_cuda*' -o -name 'libnvrtc*' -o -name 'libcusparse*' \) | head -5)
if [[ -z "$TORCH_CUDA" && -n "$cuda_libs" ]]; then
  echo "build: FAIL: CUDA libraries in a CPU build:" $cuda_libs >&2
  status=1
fi
if [[ $LESIONVIEWER_BUILD_BACKEND == onnx ]]; then
  torch_parts=$(find "$DIST" \( -name 'libtorch*' -o -name 'libc10*' -o -path '*/torch' \) | head -5)
  if [[ -n "$torch_parts" ]]; then
    echo "build: FAIL: torch in the ONNX build:" $torch_parts >&2
    status=1
  fi
fi

echo "== size on disk"
du -sh "$DIST"
du -s --block-size=1M "$DIST"/_internal/* | sort -n | tail -12 | awk '{printf "  %6d MB  %s\n", $1, $2}'
size_mb=$(du -s --block-size=1M "$DIST" | cut -f1)
target=600
if [[ -n "$TORCH_CUDA" ]]; then
  echo "build: size ${size_mb} MB (CUDA build; the 600 MB target is for CPU builds)"
elif (( size_mb > target )); then
  echo "build: size ${size_mb} MB is OVER the ${target} MB target for a CPU build"
else
  echo "build: size ${size_mb} MB (target <= ${target} MB)"
fi

if ! bash packaging/selftest_frozen.sh "$@"; then
  status=1
fi

echo "== start-up: launch to interactive main window, frozen vs. source (same run)"
"$PYTHON" packaging/startup_time.py --frozen "$APP" || status=1
exit $status
