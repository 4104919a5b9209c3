#!/usr/bin/env bash
# Create .venv and install roadsight with the named profile:
#   runtime  numpy, OpenCV, ONNX Runtime, typer, rich (no torch)
#   train    runtime + PyTorch, ultralytics, ONNX export
#   dev      train + the test tools
set -euo pipefail
profile="${1:-runtime}"
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
case "$profile" in
  runtime) python -m pip install -q -e . ;;
  train|dev)
    # torch 2.13 (the CPU wheel where one is provided locally); torchvision is only read for its
    # version by ultralytics and never imported, so it goes in without pulling another torch.
    python -m pip install -q "torch==2.13.0"
    python -m pip install -q --no-deps "torchvision==0.28.0"
    extras="train"; [ "$profile" = dev ] && extras="train,dev"
    python -m pip install -q -e ".[$extras]" ;;
  *) echo "install.sh: unknown profile '$profile'. Expected runtime, train or dev." >&2; exit 2 ;;
esac
echo "roadsight installed in .venv ($profile). Activate with: . .venv/bin/activate"
