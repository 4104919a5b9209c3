#!/usr/bin/env bash
# Robustness of the shipped models (app/models/: FP32 and both INT8 graphs) on the wide-domain held-out set
# and on one stress set per --condition, by `roadsight val`; writes a JSON, a markdown table and a figure.
#   bash scripts/robustness.sh                 # 200 held-out scenes, 100 per condition
#   N=40 bash scripts/robustness.sh            # N scenes per condition (and 2N held out): a quicker look
#   MODELS="runs/x/best.onnx" bash scripts/robustness.sh   # other models
# Seeds 9000 (held out) and 9001-9013 (conditions) are never trained on (training data uses seeds below 100).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
n="${N:-100}"
out="${OUT:-runs/robustness}"
models="${MODELS:-app/models/roadsight-n.onnx app/models/roadsight-n.int8-trt.onnx app/models/roadsight-n.int8-cpu.onnx}"
conditions="night rain fog shadows concrete curves dense glare hills worn lens intersection merges"
mkdir -p "$out/val"
synth() {  # synth NAME SEED COUNT [--condition C]
  local name="$1" seed="$2" count="$3"
  shift 3
  [ -d "data/robust-$n/$name/images" ] || roadsight data synth --out "data/robust-$n/$name" --n "$count" --seed "$seed" \
    --val-fraction 1 --domain wide "$@"
}
start=$(date +%s)
synth heldout 9000 $((2 * n))
k=1
for c in $conditions; do
  synth "$c" $((9000 + k)) "$n" --condition "$c"
  k=$((k + 1))
done
gen=$(($(date +%s) - start))
start=$(date +%s)
for m in $models; do
  for set in heldout $conditions; do
    roadsight val --weights "$m" --data "data/robust-$n/$set" --json "$out/val/$(basename "$m" .onnx)--$set.json" > /dev/null
  done
done
echo "generation ${gen} s, evaluation $(($(date +%s) - start)) s (load: $(uptime | sed 's/.*load average: //'))"
python scripts/robustness_table.py "$out/val" --sets heldout $conditions --out "$out"
