#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU and no network, build the package, run the test
# suite natively on the GPU, then benchmark every available backend against the peers
# (reference eager and compiled, unfold, nn.Conv1d and the dense GEMM as floors) at the MKCC
# layer shapes and (64, 256, 256, 512, 5), fp32 and bf16, forward and forward+backward.
#
#   bash bench/gpu_check.sh
#
# Writes gpu_check.log, gpu_tests.log, gpu_bench.csv and gpu_model_step.csv to $OUT when set,
# else bench/results/, and prints the benchmark tables. Sized to finish in under 8 minutes on an H200.
# Environment: TORCH_CUDA_ARCH_LIST (default 9.0: one arch keeps the build short), MAX_JOBS,
# PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
started=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - started )) s)"; }

stage "device"
"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device is visible to torch")
import triton
print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"triton {triton.__version__}")
PY

stage "build"
"$PYTHON" -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -n 3
"$PYTHON" -c "import mkcc_kernels; print(mkcc_kernels.build_info()); print(mkcc_kernels.available_backends('cuda'))"

stage "tests on the GPU"
# The kernel tests (the data and model tests need librosa, soundfile and PyAV, which a bare GPU
# image may lack; they run on the CPU in make test).
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider $(ls tests/test_*.py | grep -v -E 'test_(data|model|train|fault)') \
    > "$RESULTS/gpu_tests.log" 2>&1
tests_status=$?
set -e
tail -n 25 "$RESULTS/gpu_tests.log"

stage "benchmark"
rm -f "$RESULTS/gpu_bench.csv"
"$PYTHON" -m bench.kan_bench --device cuda --shape-set gpu --dtypes float32,bfloat16 \
    --warmup 2 --repeats 10 --max-seconds 1 --compile-dynamic --csv "$RESULTS/gpu_bench.csv"

stage "MKCC training step"
"$PYTHON" -m bench.model_step_bench --device cuda --providers triton,cuda,reference-compiled,unfold,cnn \
    --warmup 3 --repeats 20 --max-seconds 20 --csv "$RESULTS/gpu_model_step.csv" || true

stage "done"
echo "tests exit status: $tests_status"
exit "$tests_status"
