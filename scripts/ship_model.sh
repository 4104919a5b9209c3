#!/usr/bin/env bash
# Reproduce the shipped roadsight-n (app/models/): data, training, export, INT8, evaluation.
#   bash scripts/ship_model.sh            # everything (continues an interrupted training)
#   SKIP_TRAIN=1 bash scripts/ship_model.sh  # reuse runs/ship-n/best.pt
# Needs the train profile: bash scripts/install.sh train
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
. scripts/recipe.sh
run=runs/ship-n
models=app/models
if [ -z "${SKIP_TRAIN:-}" ]; then
  make_data
  train_variant gated "$run"
fi
roadsight export --weights "$run/best.pt" --out "$models/roadsight-n.onnx" --data data/heldout
roadsight calibrate --model "$models/roadsight-n.onnx" --source data/synth/images/train --n 512 --out "$run/calib.npz"
for target in cpu trt; do
  roadsight quantize --model "$models/roadsight-n.onnx" --calib "$run/calib.npz" --target "$target" \
    --out "$models/roadsight-n.int8-$target.onnx" --val data/heldout --max-drop 1 --json > "$run/gate-$target.json" \
    || echo "INT8 $target: the accuracy gate failed (see $run/gate-$target.json)"
done
for m in "$run/best.pt" "$models/roadsight-n.onnx" "$models/roadsight-n.int8-cpu.onnx" "$models/roadsight-n.int8-trt.onnx"; do
  roadsight val --weights "$m" --data data/heldout --json "$run/val-$(basename "$m").json"
done
