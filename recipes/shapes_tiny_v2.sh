#!/usr/bin/env bash
# The recipe of builtin:shapes-tiny-v2: train on the synthetic world, export to ONNX, report.
# One command: `bash recipes/shapes_tiny_v2.sh` (about 52 minutes on 2 CPU cores; a GPU is not needed).
# The shipped model's run config is recipes/shapes_tiny_v2.train_config.json.
# Held-out figures come from seeds never used in training (see benchmarks/report_builtin.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/shapes-tiny-v2}
STEPS=${STEPS:-2200}
$BIN/clipdex train --out "$RUN" --data synth --model builtin --stem cnn --text-conv 2 --grid-readout --loss clip \
  --steps "$STEPS" --batch-size 128 --hard-negatives 3 --binding-weight 1.0 --p-relation 0.6 --p-cross 0.35 \
  --scene-weight 1.0 --lr 2e-3 --warmup 100 --seed 0 --val-every 150
$BIN/clipdex export "$RUN" src/clipdex/models/shapes-tiny-v2 --force
$BIN/python benchmarks/report_builtin.py --model builtin:shapes-tiny-v2
