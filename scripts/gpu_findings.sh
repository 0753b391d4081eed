#!/usr/bin/env bash
# GPU findings on one lent GPU machine, in under 10 minutes (issue 16): ResNet-56 on CIFAR-10 (JPEG q75), Li et
# al.'s pruned-A/-B from it, KD ResNet-56 -> ResNet-20 against ResNet-20 from scratch, int8 of the pruned model
# (latency on the CPU, where int8 kernels are), then the GPU paths: `pytest -m gpu` (AMP bf16/fp16,
# channels_last, CUDA timing with synchronize). Results and reports land in $OUT (default findings/gpu).
#
#   bash scripts/gpu_findings.sh                  # budgeted: the published schedule's shape in EPOCHS epochs
#   EPOCHS=164 FINETUNE=40 bash scripts/gpu_findings.sh   # He et al.'s full 164 epochs (about 20 min on an H200)
#   DRY_RUN=1 bash scripts/gpu_findings.sh        # compose and print every command's config; trains nothing
#
# The data travels in ../shared/data (cifar10_jpeg.tar.gz); DATA_DIR points at an unpacked copy instead.
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCHS=${EPOCHS:-40}        # He et al.: 164 epochs, lr /10 at 50% and 75% (multistep milestones below)
FINETUNE=${FINETUNE:-10}    # Li et al.: 40 epochs at lr 0.001
OUT=${OUT:-findings/gpu}
WORK=${WORK:-$(mktemp -d)}
PY=${PYTHON:-python}
DRY_RUN=${DRY_RUN:-0}

if [ -z "${DATA_DIR:-}" ]; then
  DATA_DIR="$WORK/data"
  if [ "$DRY_RUN" = 1 ]; then mkdir -p "$DATA_DIR"; else ../shared/data/unpack.sh "$DATA_DIR"; fi
fi

common=(dataset=cifar10_jpeg "paths.data_dir=$DATA_DIR" "paths.cache_dir=$WORK/cache" runtime.device=cuda
        runtime.amp=auto runtime.channels_last=auto "train.epochs=$EPOCHS" train.scheduler=multistep
        "train.milestones=[$((EPOCHS / 2)),$((EPOCHS * 3 / 4))]" train.weight_decay=1e-4
        "finetune.epochs=$FINETUNE" train.batch_size=128)

step() {  # step NAME ARGS...: one compressbench command, timed; its run dir is $WORK/runs/NAME
  local name=$1; shift
  if [ "$DRY_RUN" = 1 ]; then
    "$PY" -m compressbench "$@" --cfg job > "$WORK/$name.yaml"
    echo "composed $name ($(wc -l < "$WORK/$name.yaml") lines)"
    return
  fi
  local t0=$SECONDS
  "$PY" -m compressbench "$@" "hydra.run.dir=$WORK/runs/$name" "hydra.sweep.dir=$WORK/runs/$name"
  echo "$name,$((SECONDS - t0))" >> "$WORK/wall_s.csv"
}

# One ResNet-56 baseline (cached), both of Li et al.'s prunings from it; pruned-B also to int8.
step resnet56_l1filter_a +experiment=resnet56_l1filter_a "${common[@]}"
step resnet56_l1filter_b +experiment=resnet56_l1filter_b "${common[@]}" "chain=[train,prune,finetune,quantize]"
# Hinton KD, ResNet-56 -> ResNet-20, after the same student trained on labels alone (the experiment's scratch).
ms="[$((EPOCHS / 2)),$((EPOCHS * 3 / 4))]"
step resnet56_to_resnet20_kd +experiment=resnet56_to_resnet20_kd "${common[@]}" "distill.epochs=$EPOCHS" \
  "distill.milestones=$ms" "scratch.epochs=$EPOCHS" "scratch.milestones=$ms" "chain=[train,scratch,distill,quantize]"

if [ "$DRY_RUN" = 1 ]; then exit 0; fi
# The GPU paths: AMP, channels_last, CUDA-synchronised timing, resume and determinism on the device.
"$PY" -m pytest -m gpu -q tests/e2e/test_gpu.py | tee "$WORK/pytest_gpu.txt"

mkdir -p "$OUT"
for run in "$WORK"/runs/*/; do
  "$PY" -m compressbench.report "$run" --findings-dir "$OUT"
done
cp "$WORK/wall_s.csv" "$WORK/pytest_gpu.txt" "$OUT/"
{ echo "# GPU findings"; echo; echo "- command: EPOCHS=$EPOCHS FINETUNE=$FINETUNE bash scripts/gpu_findings.sh";
  echo "- machine: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), torch $("$PY" -c 'import torch; print(torch.__version__)')";
  echo "- date: $(date -u +%Y-%m-%d), data: CIFAR-10 (JPEG q75)"; } > "$OUT/README.md"
echo "findings in $OUT (work files in $WORK)"
