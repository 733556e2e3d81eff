#!/usr/bin/env bash
# The recipe of builtin:shapes-tiny: train on the synthetic world in two stages, export to ONNX, report.
# One command: `bash recipes/shapes_tiny.sh` (about 64 minutes on 2 CPU cores: 52 + 12; a GPU is not needed).
# The shipped model's run configs are recipes/shapes_tiny.stage1.train_config.json and .stage2.
# Held-out figures come from seeds never used in training (see benchmarks/report_builtin.py).
#
# Stage 1 learns objects and colour-shape binding: CNN image tower, word convolutions, grid read-out,
# cross-binding captions and scene supervision. Stage 2 starts from its weights and teaches relations:
# 90% of captions name two objects and their relation (one hard negative is the flipped relation),
# and the left/right/above/below read-outs weigh 10x, so the image embedding holds where each object
# is before the text tower has a reason to read word order.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/shapes-tiny}
COMMON=(--data synth --model builtin --stem cnn --text-conv 2 --grid-readout --loss clip --batch-size 128
        --hard-negatives 3 --binding-weight 1.0 --scene-weight 1.0)
$BIN/clipdex train --out "$RUN-stage1" "${COMMON[@]}" --steps 2200 --lr 2e-3 --warmup 100 \
  --p-relation 0.6 --p-cross 0.35 --seed 0 --val-every 150
$BIN/clipdex train --out "$RUN-stage2" "${COMMON[@]}" --init "$RUN-stage1" --steps 500 --lr 1e-3 --warmup 20 \
  --p-relation 0.9 --p-cross 0.2 --role-weight 10 --seed 1 --val-every 100
$BIN/clipdex export "$RUN-stage2" src/clipdex/models/shapes-tiny --force
$BIN/python benchmarks/report_builtin.py --model builtin:shapes-tiny
