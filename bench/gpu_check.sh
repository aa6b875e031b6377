#!/usr/bin/env bash
# The GPU check, sized for one call of at most 10 minutes on a fresh H100 or H200 with no
# network: build the package for this GPU's arch only, with every core; run the kernel tests on
# the GPU; benchmark the fused backends against the compiled reference, unfold and nn.Conv1d at
# bench's GPU shapes (fp32 and bf16, forward and forward+backward), each time printed beside its
# H100/H200 floor (bench/gpu_costs.py); time one MKCC training step. Every phase runs under its
# own time budget; a phase that cannot fit in what is left of the total is skipped with the
# reason. Results are written as they come, so a run cut short keeps what it measured.
#
#   bash bench/gpu_check.sh             # run
#   bash bench/gpu_check.sh --dry-run   # print the phases, their budgets and commands; run nothing
#
# Writes gpu_check.log, gpu_tests.log, gpu_bench.csv and gpu_model_step.csv to $OUT when set,
# else bench/results/. Exit status: the tests' (1 when they could not run). Environment: TOTAL_BUDGET (seconds, default 480:
# with a machine's start, one call of under 10 minutes), TORCH_CUDA_ARCH_LIST (default: the arch
# of GPU 0), MAX_JOBS (default: every core), PYTHON (default python3). Budgets are caps: a phase
# that ends early leaves its time to the next ones (the build's critical path is one CPU-kernel
# translation unit, ~140 s on this project's CPU machine; bench/NOTES.md).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
PYTHON="${PYTHON:-python3}"
RESULTS="${OUT:-bench/results}"
TOTAL_BUDGET="${TOTAL_BUDGET:-480}"
export PYTHONUNBUFFERED=1
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
mkdir -p "$RESULTS"
if [[ $DRY_RUN == 0 ]]; then
    exec > >(tee "$RESULTS/gpu_check.log") 2>&1
fi
started=$(date +%s)
planned=0  # a dry run counts every phase at its full budget
skipped=""
stopped=""

# The test files with GPU cases (the others run on the CPU in make test, as does the
# compile-time resource check, which needs no GPU).
TEST_FILES="tests/test_triton_backend.py tests/test_cuda_backend.py tests/test_cuda_build.py \
tests/test_build.py tests/test_validation.py"
XDIST=""
if "$PYTHON" -c "import xdist" >/dev/null 2>&1; then XDIST="-n $(( $(nproc) < 8 ? $(nproc) : 8 ))"; fi

# phase NAME BUDGET MINIMUM FUNCTION: runs the (exported) shell function under `timeout` for at
# most BUDGET seconds, or what is left of the total if that is less; skips it when less than
# MINIMUM is left. Sets `status` to its exit status (0 for a dry run or a skip).
phase() {
    local name=$1 budget=$2 minimum=$3
    shift 3
    local elapsed left
    elapsed=$(( DRY_RUN == 1 ? planned : $(date +%s) - started ))
    left=$(( TOTAL_BUDGET - elapsed ))
    (( budget > left )) && budget=$left
    status=0
    ran=0
    echo
    echo "== $name: budget ${budget} s, ${left} s of ${TOTAL_BUDGET} s left"
    echo "   $(type "$1" | tail -n +4 | head -n -1 | sed 's/^ *//' | tr '\n' ' ')"
    if [[ $DRY_RUN == 1 ]]; then planned=$(( planned + budget )); return 0; fi
    if (( budget < minimum )); then
        echo "== $name: SKIPPED: ${left} s left, the phase needs at least ${minimum} s"
        skipped="$skipped $name;"
        return 0
    fi
    local t0=$SECONDS
    ran=1
    timeout --signal=INT --kill-after=10 "$budget" bash -c "$1"
    status=$?
    if (( status == 124 || status == 137 )); then
        echo "== $name: STOPPED at its budget of ${budget} s (what it wrote so far is kept)"
        stopped="$stopped $name;"
    fi
    echo "== $name: exit status $status after $(( SECONDS - t0 )) s"
    return 0
}

device_arch() {
    "$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device is visible to torch")
major, minor = torch.cuda.get_device_capability()
print(f"{major}.{minor}")
PY
}

describe() {
    "$PYTHON" - <<'PY'
import torch
import triton
print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"triton {triton.__version__}, {torch.cuda.get_device_properties(0).multi_processor_count} SMs")
PY
}

build() {
    "$PYTHON" -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -n 3 &&
        "$PYTHON" -c "import mkcc_kernels as m; print(m.build_info()); print(m.available_backends('cuda'))"
}

if [[ $DRY_RUN == 1 ]]; then
    export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-<arch of GPU 0>}"
else
    if ! arch=$(device_arch); then exit 1; fi
    export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$arch}"
    describe
fi
echo "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS TOTAL_BUDGET=$TOTAL_BUDGET s"

gpu_tests() {
    "$PYTHON" -m pytest -q -p no:cacheprovider $XDIST $TEST_FILES > "$RESULTS/gpu_tests.log" 2>&1
    local status=$?
    tail -n 25 "$RESULTS/gpu_tests.log"
    return $status
}

gpu_bench() {
    "$PYTHON" -m bench.kan_bench --device cuda --shape-set gpu --dtypes float32,bfloat16 \
        --providers triton,cuda,reference-compiled,unfold,conv1d --warmup 2 --repeats 10 \
        --min-seconds 0 --max-seconds 0.5 --compile-dynamic --time-budget 120 \
        --csv "$RESULTS/gpu_bench.csv"
}

model_step() {
    "$PYTHON" -m bench.model_step_bench --device cuda \
        --providers triton,cuda,reference-compiled,unfold,cnn --warmup 3 --repeats 20 \
        --max-seconds 3 --csv "$RESULTS/gpu_model_step.csv"
}

export PYTHON RESULTS TEST_FILES XDIST
export -f build gpu_tests gpu_bench model_step

phase "build" 240 60 build
if [[ $DRY_RUN == 0 ]] && (( status != 0 || ran == 0 )); then
    echo "== no build: nothing else can run"
    exit 1
fi
phase "tests on the GPU" 150 60 gpu_tests
tests_status=$status
(( ran == 0 )) && tests_status=1
phase "benchmark" 150 60 gpu_bench
phase "MKCC training step" 40 20 model_step

echo
if [[ $DRY_RUN == 1 ]]; then
    echo "== dry run: the phases' budgets add up to ${planned} s of ${TOTAL_BUDGET} s"
    exit 0
fi
echo "== done after $(( $(date +%s) - started )) s; tests exit status $tests_status;" \
    "stopped at their budget:${stopped:- none} skipped:${skipped:- none}"
exit "$tests_status"
