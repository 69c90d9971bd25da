#!/usr/bin/env bash
# gpu_check.sh: check every CUDA path of the port on a GPU machine and write one report (`make gpu-check`).
#
# Run from the repository root. Without a CUDA GPU it prints one line and exits 0 (nothing is written).
# With one it:
#   1. makes sure the venv's torch is a CUDA build; a CPU-only torch is replaced with
#      `pip install --force-reinstall $TORCH_SPEC --index-url $TORCH_INDEX_URL`
#      (defaults: torch==2.13.0 and https://download.pytorch.org/whl/cu128). To reuse a CUDA torch
#      installed system-wide instead, create the venv with `make setup VENV_FLAGS=--system-site-packages`
#      (a venv without its own torch then imports the system one and nothing is installed);
#   2. rebuilds DCNv2 with CUDA for this GPU's architecture only (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST);
#   3. runs the steps below, each under its own `timeout`, and keeps going after a failure.
# The steps after the torch install share a budget of GPU_CHECK_BUDGET seconds (default 460, under
# 8 minutes); a step that would start with less than 15 s left is SKIPped.
# Report: $GPU_CHECK_OUT/report.md (default exp/gpu_check), one markdown table; each step's full
# output in $GPU_CHECK_OUT/<step>.log. Exit status 1 when any step FAILed, else 0.
# Environment: VENV (default .venv), TORCH_SPEC, TORCH_INDEX_URL, GPU_CHECK_OUT, GPU_CHECK_BUDGET,
# GPU_CHECK_FORCE=1 (run the steps even without a GPU, to try the script on a CPU machine; no torch
# install), GPU_CHECK_SKIP_BUILD=1 (keep the DCNv2 extension as built), GPU_CHECK_NGPU (GPU count, to dry-run
# the 2-GPU steps).
set -u -o pipefail

VENV=${VENV:-.venv}
PY=$(pwd)/$VENV/bin/python
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu128}
OUT=${GPU_CHECK_OUT:-exp/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-460}
FORCE=${GPU_CHECK_FORCE:-0}
DCN_DIR=src/lib/models/networks/DCNv2
export PY OUT DCN_DIR

if [[ ! -x $PY ]]; then
  echo "gpu-check: no $VENV/bin/python; run make setup first" >&2
  exit 2
fi

# torch.cuda.is_available() is False both without a GPU and with a CPU-only torch, so ask nvidia-smi too
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  has_gpu=1
elif "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  has_gpu=1
fi
if [[ $has_gpu == 0 && $FORCE != 1 ]]; then
  echo "gpu-check: no CUDA GPU here; nothing run"
  exit 0
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ROWS=()
FAILED=0

# add a table row; `|` in the detail would break the markdown table
row() {
  local detail=${4//|//}
  ROWS+=("| $1 | $2 | $3 | $detail |")
  printf '%-12s %-4s %5ss  %s\n' "$1" "$2" "$3" "$4"
  [[ $2 == FAIL ]] && FAILED=1
  return 0
}

# last line of a log, shortened, as the one-line detail; blank and ==== lines skipped (torchrun ends on one)
last_line() {
  grep -Ev '^[[:space:]=-]*$' "$1" 2>/dev/null | tail -n 1 | cut -c1-150
}

# step NAME TIMEOUT CMD...: run CMD in a subshell under timeout, log to $OUT/NAME.log, add a row
START=$SECONDS
step() {
  local name=$1 limit=$2 left rc t0
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  if ((left < 15)); then
    row "$name" SKIP 0 "time budget of ${BUDGET}s spent"
    return 0
  fi
  ((limit > left)) && limit=$left
  t0=$SECONDS
  # through bash -c so that a step can be one of the exported shell functions below
  timeout --kill-after 10 "$limit" bash -c '"$@"' "$name" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  if ((rc == 0)); then
    row "$name" PASS $((SECONDS - t0)) "$(last_line "$OUT/$name.log")"
  elif ((rc == 124 || rc == 137)); then
    row "$name" FAIL $((SECONDS - t0)) "timed out after ${limit}s: $(last_line "$OUT/$name.log")"
  else
    row "$name" FAIL $((SECONDS - t0)) "exit $rc: $(last_line "$OUT/$name.log")"
  fi
}

# --- 1. a CUDA torch (not counted in the budget: a wheel download can take minutes)
cuda_torch() { "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; }
t0=$SECONDS
if cuda_torch; then
  row torch PASS 0 "$("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>&1)"
elif [[ $has_gpu == 0 ]]; then
  row torch SKIP 0 "CPU-only torch and no GPU (GPU_CHECK_FORCE dry run): not reinstalled"
else
  "$PY" -m pip install --force-reinstall "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL" >"$OUT/torch.log" 2>&1
  if cuda_torch; then
    row torch PASS $((SECONDS - t0)) "installed $TORCH_SPEC from $TORCH_INDEX_URL"
  else
    row torch FAIL $((SECONDS - t0)) "no CUDA torch after installing $TORCH_SPEC from $TORCH_INDEX_URL"
  fi
fi
START=$SECONDS

NGPU=${GPU_CHECK_NGPU:-$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)}
ARCH=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null || echo "")
export ARCH

# --- 2. DCNv2 with CUDA kernels for this GPU only (one architecture compiles several times faster)
if [[ ${GPU_CHECK_SKIP_BUILD:-0} == 1 ]]; then
  row build SKIP 0 "GPU_CHECK_SKIP_BUILD=1"
else
  build() { cd "$DCN_DIR" && FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" "$PY" setup.py build develop; }
  export -f build
  step build 240 build
fi

# --- 3a. the CUDA tests; a skipped one means the CUDA path was not checked, so it counts as a failure
cuda_tests() {
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_dcn.py tests/test_dcn_networks.py \
    -k "cuda or real_dcn" || return 1
  ! grep -q "SKIPPED" "$OUT/cuda_tests.log"
}
export -f cuda_tests
step cuda_tests 120 cuda_tests

# --- 3b. the faithfulness check of the DCN kernels against the original's outputs
if [[ -f ../shared/faithful/check_dcn.py ]]; then
  step faithful 90 "$PY" ../shared/faithful/check_dcn.py cuda
else
  row faithful SKIP 0 "../shared/faithful/check_dcn.py not here"
fi

# --- 3c. short ctdet trainings on a generated synthetic set
"$PY" src/tools/gen_synthetic.py --kind det --out "$TMP/data/synth" --train 16 --val 4 >"$OUT/data.log" 2>&1 \
  || row data FAIL 0 "$(last_line "$OUT/data.log")"
COMMON=(ctdet --dataset synth --input_res 128 --num_epochs 1 --num_iters 5 --batch_size 4 --num_workers 2
        --val_intervals 1 --data_dir "$TMP/data" --exp_root "$TMP/exp")
train() { cd src && "$PY" main.py "$@"; }
ddp() { cd src && "$PY" -m torch.distributed.run --nproc_per_node 2 main.py "$@"; }
run_test() { cd src && "$PY" test.py "$@"; }
export -f train ddp run_test
step train_res18 120 train "${COMMON[@]}" --exp_id res18 --arch res_18 --gpus 0
step train_dla34 150 train "${COMMON[@]}" --exp_id dla34 --arch dla_34 --gpus 0

# --- 3c'. mixed precision (fp16 with its scaler, bf16), DDP on NCCL with one process, SyncBN
step train_fp16 120 train "${COMMON[@]}" --exp_id fp16 --arch resdcn_18 --gpus 0 --amp fp16
step train_bf16 120 train "${COMMON[@]}" --exp_id bf16 --arch dla_34 --gpus 0 --amp bf16
ddp1() { cd src && "$PY" -m torch.distributed.run --nproc_per_node 1 main.py "$@"; }
export -f ddp1
step ddp_1gpu_sync_bn 150 ddp1 "${COMMON[@]}" --exp_id ddp1 --arch res_18 --gpus 0 --sync_bn --amp fp16
step test_fp16 90 run_test ctdet --dataset synth --input_res 128 --arch resdcn_18 --gpus 0 --exp_id fp16 \
  --resume --amp fp16 --data_dir "$TMP/data" --exp_root "$TMP/exp"

# --- 3d. test.py on the res_18 experiment (prints the per-stage timings)
step test 90 run_test ctdet --dataset synth --input_res 128 --arch res_18 --gpus 0 --exp_id res18 --resume \
  --data_dir "$TMP/data" --exp_root "$TMP/exp"

# --- 3e/3f. DataParallel and DistributedDataParallel over 2 GPUs
if ((NGPU >= 2)); then
  step dp 120 train "${COMMON[@]}" --exp_id dp --arch res_18 --gpus 0,1 --master_batch_size 1
  step ddp 150 ddp "${COMMON[@]}" --exp_id ddp --arch res_18 --gpus 0,1
else
  row dp SKIP 0 "$NGPU GPU(s); needs 2"
  row ddp SKIP 0 "$NGPU GPU(s); needs 2"
fi

# --- 3f'. training throughput: one GPU against DDP over the GPUs, float32 against --amp (ratios)
step bench_train 150 "$PY" src/tools/bench_train.py --arch res_18 --input_res 512 --batch_size 32 --steps 10 \
  --nproc "$NGPU" --amp fp16

# --- 3g. DCN kernel timings (torchvision is optional: bench_dcn.py drops its column without it)
step bench_dcn 120 "$PY" src/tools/bench_dcn.py --batch 1 8 --reps 3 --device cuda --no-ref

# --- 3h. inference timing of res_18 at 512x512 (no inference benchmark script in src/tools)
cat >"$TMP/infer.py" <<'EOF'
"""Time a res_18 ctdet forward at 512x512, batch 1 and 32, on the GPU."""
import sys
import time

import torch

sys.path.insert(0, "src/lib")
from models.model import create_model  # noqa: E402

model = create_model("res_18", {"hm": 80, "wh": 2, "reg": 2}, head_conv=64).cuda().eval()
parts = []
with torch.inference_mode():
    for batch in (1, 32):
        x = torch.randn(batch, 3, 512, 512, device="cuda")
        for _ in range(3):  # warm-up: cuDNN picks its algorithms on the first calls
            model(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            model(x)
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) / 10 * 1000
        parts.append(f"batch {batch}: {ms:.1f} ms ({ms / batch:.2f} ms/image)")
print("res_18 512x512 forward, " + ", ".join(parts))
EOF
step infer 90 "$PY" "$TMP/infer.py"

# --- the report, written whole then moved so that a reader never sees half of it
{
  echo "# gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$( (nvidia-smi -L 2>/dev/null || echo "no nvidia-smi") | head -n 4 | paste -sd ';' -)"
  echo
  echo "| step | result | seconds | detail |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$OUT/.report.md.tmp"
mv -f "$OUT/.report.md.tmp" "$OUT/report.md"
echo
cat "$OUT/report.md"
exit $FAILED
