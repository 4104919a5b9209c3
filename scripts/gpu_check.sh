#!/usr/bin/env bash
# The GPU check (about 5 minutes on a machine with an NVIDIA GPU), after `bash scripts/install.sh dev` and
# `.venv/bin/pip install -e '.[gpu]'` (or, without TensorRT, just a CUDA compiler for pycuda):
#   1. prints the GPU, driver, CUDA, TensorRT and pycuda versions;
#   2. runs `pytest -m gpu` (real TensorRT tests, and the pycuda half with the stand-in TensorRT);
#   3. builds FP32, FP16 and int8-trt engines of the shipped model (dynamic batch 1,4,8) and checks them
#      against ONNX Runtime on the 200 held-out synthetic scenes (FP32 tight, FP16 and INT8 within the gate);
#   4. runs Predictor on 5 frames with a batch-4 engine, and one engine opened on one thread and used and
#      closed on another;
#   5. runs `roadsight bench` on the three engines.
# Without TensorRT it builds pycuda from source (needs nvcc) and runs only the pycuda half.
# Usage: bash scripts/gpu_check.sh [OUT]   (default runs/gpu_check; everything it prints also goes to OUT/gpu_check.log)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu_check}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
failed=()
step() { echo; echo "== $*"; }
check() { "$@" || failed+=("$*"); }

step "machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
uname -srm
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader \
  || { echo "nvidia-smi found no NVIDIA GPU or driver: nothing to check here."; exit 1; }
nvidia-smi | sed -n 's/.*CUDA Version: \([0-9.]*\).*/driver supports CUDA \1/p'
if command -v nvcc >/dev/null; then nvcc --version | tail -n 1; else echo "nvcc: not found"; fi
have() { "$py" -c "import $1" >/dev/null 2>&1; }
if ! have pycuda.driver && command -v nvcc >/dev/null; then
  step "building pycuda from source"
  check "$py" -m pip install -q "pycuda>=2025.1.2"
fi
"$py" - <<'PY'
import importlib
for name in ("tensorrt", "pycuda", "onnxruntime", "numpy"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", None) or getattr(module, "VERSION_TEXT", "?"))
    except ImportError as error:
        print(f"{name}: not importable ({error})")
try:
    import pycuda.driver as cuda
    cuda.init()
    print(f"CUDA driver {cuda.get_driver_version()}, pycuda built for CUDA {cuda.get_version()}")
except Exception as error:
    print(f"pycuda: cannot start the driver ({error})")
PY

if ! have tensorrt; then
  step "TensorRT not importable: the pycuda half only (real pycuda, stand-in TensorRT)"
  check "$py" -m pytest -q -m gpu -rs tests/engines/test_tensorrt_pycuda.py
  step "result"; [ ${#failed[@]} -eq 0 ] && echo "pycuda half passed; TensorRT checks not run (TensorRT missing)" && exit 0
  printf 'FAILED: %s\n' "${failed[@]}"; exit 1
fi

step "pytest -m gpu"
check "$py" -m pytest -q -m gpu -rs tests/engines/test_tensorrt.py tests/engines/test_tensorrt_pycuda.py

step "the shipped model with a dynamic batch: FP32, FP16, int8-trt"
check "$py" scripts/gpu_check.py models "$out"
[ -d "$out/heldout" ] || check .venv/bin/roadsight data synth --out "$out/heldout" --n 200 --seed 1 --val-fraction 1
for name in fp32 fp16 int8-trt; do
  check .venv/bin/roadsight build --onnx "$out/$name.onnx" --out "$out/$name.engine" --batch 1,4,8 --timing-cache "$out/timing.cache"
done
check .venv/bin/roadsight build --onnx "$out/fp32.onnx" --out "$out/fp32-b4.engine" --batch 4 --timing-cache "$out/timing.cache"

step "engines vs ONNX Runtime"
check "$py" scripts/gpu_check.py compare "$out" "$out/heldout"
step "Predictor with a batch-4 engine; threads"
check "$py" scripts/gpu_check.py predictor "$out" "$out/heldout"
check "$py" scripts/gpu_check.py threads "$out" "$out/heldout"

step "roadsight bench"
check .venv/bin/roadsight bench -m "$out/fp32.engine" -m "$out/fp16.engine" -m "$out/int8-trt.engine" --batch 1,4,8 --runs 200 --out "$out/bench"

step "result"
if [ ${#failed[@]} -eq 0 ]; then echo "all GPU checks passed"; exit 0; fi
printf 'FAILED: %s\n' "${failed[@]}"
exit 1
