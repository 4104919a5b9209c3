# The training recipe of ablation.sh (sourced, not run).
# Data: 1600 classic-domain synthetic scenes (seed 0, 10% val) to train on, 200 more (seed 1) held out for every reported figure.
EPOCHS="${EPOCHS:-14}"

make_data() {
  [ -d data/synth/images ] || roadsight data synth --out data/synth --n 1600 --seed 0 --val-fraction 0.1 --domain classic
  [ -d data/heldout/images ] || roadsight data synth --out data/heldout --n 200 --seed 1 --val-fraction 1 --domain classic
}

# train_run OUT EPOCHS ARGS...: `roadsight train ARGS --out OUT --epochs EPOCHS`, continuing OUT/last.pt when a
# run was interrupted, and doing nothing when OUT already holds all EPOCHS.
train_run() {
  local out="$1" epochs="$2"
  shift 2
  if [ -f "$out/results.csv" ] && [ "$(tail -n 1 "$out/results.csv" | cut -d, -f1)" = "$epochs" ]; then return; fi
  if [ -f "$out/last.pt" ]; then
    roadsight train --data data/synth --out "$out" --epochs "$epochs" --workers 2 --resume
  else
    roadsight train --data data/synth --out "$out" --epochs "$epochs" --workers 2 --seed 0 "$@"
  fi
}

# train_variant ATTENTION OUT: roadsight-n at 320x192 for EPOCHS, the same budget and seed for every variant.
train_variant() {
  train_run "$2" "$EPOCHS" --size n --attention "$1" --imgsz 320x192 --batch 16 --val-every 7
}
