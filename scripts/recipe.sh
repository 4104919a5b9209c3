# The one training recipe shared by ship_model.sh and ablation.sh (sourced, not run).
# Data: 1600 synthetic scenes (seed 0, 10% val) to train on, 200 more (seed 1) held out for every reported figure.
EPOCHS="${EPOCHS:-14}"

make_data() {
  [ -d data/synth/images ] || roadsight data synth --out data/synth --n 1600 --seed 0 --val-fraction 0.1
  [ -d data/heldout/images ] || roadsight data synth --out data/heldout --n 200 --seed 1 --val-fraction 1
}

# train_variant ATTENTION OUT: roadsight-n at 320x192, the same budget and seed for every attention variant.
# Continues an interrupted run (OUT/last.pt); does nothing when OUT already holds all EPOCHS.
train_variant() {
  local resume=()
  if [ -f "$2/results.csv" ] && [ "$(tail -n 1 "$2/results.csv" | cut -d, -f1)" = "$EPOCHS" ]; then return; fi
  [ -f "$2/last.pt" ] && resume=(--resume)
  roadsight train --data data/synth --size n --attention "$1" --epochs "$EPOCHS" --imgsz 320x192 \
    --batch 16 --workers 2 --val-every 7 --out "$2" --seed 0 "${resume[@]}"
}
