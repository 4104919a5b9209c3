#!/usr/bin/env bash
# Reproduce the attention ablation (docs/ABLATION.md): vanilla, clipped and gated roadsight-n trained with one
# recipe (scripts/recipe.sh), then per variant FP32 vs INT8 (trt graph and cpu) on the held-out scenes, and the
# attention outlier statistics (classic-domain data, 320x192; the shipped model has its own schedule: ship_model.sh).
# Needs the train profile: bash scripts/install.sh train
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
. scripts/recipe.sh
make_data
for variant in vanilla clipped gated; do train_variant "$variant" "runs/ablation/train-$variant"; done
python -m calibration.ablation --ckpt vanilla=runs/ablation/train-vanilla/best.pt \
  --ckpt clipped=runs/ablation/train-clipped/best.pt --ckpt gated=runs/ablation/train-gated/best.pt \
  --calib data/synth/images/train --val data/heldout --out runs/ablation
