# The two set-up commands of clipdex: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test lint typecheck unit bench bench-peers clean chromium serve-demo

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime + serve: numpy, Pillow, onnxruntime, tokenizers, faiss-cpu, pyarrow, FastAPI (no torch).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[serve]'
	touch $@

# Dev extras: torch 2.13.0 (CPU wheel), transformers, pytest, ruff, mypy, import-linter, playwright (driver only).
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

# Debian's Chromium for the browser tests (never a browser download by a test tool), and the
# libGL / GLib that OpenCV (pulled in by the OCR engine) loads.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@ldconfig -p | grep -q 'libGL.so.1 ' || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0; }

demo: $(VENV)/.runtime
	@test -d $(DEMO)/data || $(BIN)/clipdex synth --out $(DEMO)/data --n 600 --seed 7 --format folder
	$(BIN)/clipdex index $(DEMO)/data --collection $(DEMO)/collection
	$(BIN)/clipdex info $(DEMO)/collection
	@echo "--- text -> image: 'a red circle'"
	$(BIN)/clipdex search $(DEMO)/collection "a red circle" -k 5
	@echo "--- text -> image: 'a blue star left of a red square' (one demo scene holds it), then flipped"
	$(BIN)/clipdex search $(DEMO)/collection "a blue star left of a red square" -k 5
	$(BIN)/clipdex search $(DEMO)/collection "a red square left of a blue star" -k 5
	@echo "--- image -> image: $(DEMO)/data/images/000003.png"
	$(BIN)/clipdex search $(DEMO)/collection --image $(DEMO)/data/images/000003.png -k 5
	@echo "--- image -> text (nearest stored captions)"
	$(BIN)/clipdex search $(DEMO)/collection --image $(DEMO)/data/images/000003.png --captions -k 5

serve-demo: demo
	$(BIN)/clipdex serve $(DEMO)/collection

# ruff, and import-linter's layers contract in pyproject.toml (every module imports only downward)
lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: $(VENV)/.dev chromium lint typecheck
	$(BIN)/pytest -q

unit: $(VENV)/.dev
	$(BIN)/pytest -q -m unit

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_embed.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_curate.py
	$(BIN)/python benchmarks/bench_synth.py

# clipdex beside rclip 3.3.0 (its own venv, PyPI) and every image-tower backend on the real shapes: minutes, not in `make test`
bench-peers: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/bench_backends.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache .mypy_cache
