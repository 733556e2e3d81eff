#!/usr/bin/env bash
# The recipe of builtin:shapes-tiny: train on the synthetic world in two stages, export to ONNX, report.
# One command: `bash recipes/shapes_tiny.sh` (about 45 minutes on 2 CPU cores; a GPU is not needed). To reproduce without replacing the shipped model: RUN=runs/repro EXPORT=/tmp/repro bash ...
# Held-out figures come from seeds never used in training (see benchmarks/report_builtin.py).
#
# Stage 1 learns objects, colour-shape binding and places: CNN image tower, word convolutions, grid
# read-out into a 256-d joint space, cross-binding captions, relation captions with flipped hard
# negatives, and scene supervision (cells, pairs, roles, and each pair's cell and the object count).
# The 256-d space is what lets the embedding hold what x where for up to four objects; at 64-d the
# place read-outs stayed near chance. Stage 2 is a short pass closer to the test captions: few
# cross captions (whose "a red circle" names one object of a busier scene), more paraphrases, and
# position captions ("a red circle on the left with 2 other shapes") against another place or count.
# Every stage draws each image in one of six rendering styles (--styles train: outlines, jitter and
# rotation, gradient, noisy and striped backgrounds, and the plain renderer) so binding holds on drawings
# never seen (clipdex eval binding measures four held-out styles); stage 1b continues stage 1 for 1,200
# steps with more relation captions (80 %), which style randomisation needs to learn relations again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/shapes-tiny}
# Where the model goes: the package by default; a reproduction sets EXPORT to a scratch folder so the
# shipped model stays as it is and the two reports can be compared.
EXPORT=${EXPORT:-src/clipdex/models/shapes-tiny}
# Every option of each stage is in its run config (the same file the run records in its folder, so
# `diff recipes/shapes_tiny.stage1.train_config.json "$RUN-stage1/train_config.json"` shows only `out`).
# Each flag of `clipdex train` is a field there (--p-cross is p_cross).
$BIN/clipdex train --config recipes/shapes_tiny.stage1.train_config.json --out "$RUN-stage1"
$BIN/clipdex train --config recipes/shapes_tiny.stage1b.train_config.json --out "$RUN-stage1b" --init "$RUN-stage1"
$BIN/clipdex train --config recipes/shapes_tiny.stage2.train_config.json --out "$RUN-stage2" --init "$RUN-stage1b"
$BIN/clipdex export "$RUN-stage2" "$EXPORT" --force
$BIN/python benchmarks/report_builtin.py --model "onnx:$EXPORT"
$BIN/clipdex eval binding --model "onnx:$EXPORT" --n 600
