#!/usr/bin/env bash
# An experiment for binding that generalises across drawing styles (issue: held-out rendering styles):
# the recipe of builtin:shapes-tiny (recipes/shapes_tiny.sh) with style randomisation over the training
# styles (clipdex.synth.styles.TRAIN_STYLES), then `clipdex eval binding` on the held-out styles.
# It writes to a scratch run and export by default and never replaces the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/shapes-tiny-styled}
EXPORT=${EXPORT:-runs/shapes-tiny-styled-model}
$BIN/clipdex train --config recipes/shapes_tiny_styled.stage1.train_config.json --out "$RUN-stage1"
$BIN/clipdex train --config recipes/shapes_tiny_styled.stage2.train_config.json --out "$RUN-stage2" --init "$RUN-stage1"
$BIN/clipdex export "$RUN-stage2" "$EXPORT" --force
$BIN/clipdex eval binding --model "onnx:$EXPORT" --n 600 --out "$RUN-binding.json"
