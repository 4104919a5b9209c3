#!/usr/bin/env bash
# Reproduce the shipped roadsight-n (app/models/): data, training, export, INT8, evaluation.
#   bash scripts/ship_model.sh            # everything (continues an interrupted training)
#   SKIP_TRAIN=1 bash scripts/ship_model.sh  # reuse runs/ship-n/best.pt
# Training: 14 epochs at 320x192 (the ablation's gated run), then 16 at 640x384, extended to 24.
# Needs the train profile: bash scripts/install.sh train
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
. scripts/recipe.sh
run=runs/ship-n
models=app/models
if [ -z "${SKIP_TRAIN:-}" ]; then
  make_data
  # 1. the ablation's gated run: 14 epochs at 320x192 (scripts/recipe.sh)
  train_variant gated runs/ablation/train-gated
  # 2. fine-tuned at 640x384, where distant vehicles are twice as many pixels tall
  train_run "$run" 16 --weights runs/ablation/train-gated/best.pt --imgsz 640x384 --batch 16 --val-every 6
  # 3. the same run extended to 24 epochs (--resume with a longer cosine: lr back to ~5e-4, annealed again)
  train_run "$run" 24
fi
roadsight export --weights "$run/best.pt" --fp16-weights --out "$models/roadsight-n.onnx" --data data/heldout
roadsight calibrate --model "$models/roadsight-n.onnx" --source data/synth/images/train --n 512 --out "$run/calib.npz"
for target in cpu trt; do
  roadsight quantize --model "$models/roadsight-n.onnx" --calib "$run/calib.npz" --target "$target" \
    --out "$models/roadsight-n.int8-$target.onnx" --val data/heldout --max-drop 1 --json > "$run/gate-$target.json" \
    || { echo "INT8 $target: the accuracy gate failed; nothing shipped past it (see $run/gate-$target.json)" >&2; exit 1; }
done
for m in "$run/best.pt" "$models/roadsight-n.onnx" "$models/roadsight-n.int8-cpu.onnx" "$models/roadsight-n.int8-trt.onnx"; do
  roadsight val --weights "$m" --data data/heldout --json "$run/val-$(basename "$m").json"
done
roadsight bench -m "$models/roadsight-n.onnx" -m "$models/roadsight-n.int8-cpu.onnx" --runs 300 --out "$run/bench"
