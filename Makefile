# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo gpu-demo test lint typecheck unit proofs coq coq-install bench heatmap clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first, pinned: an unpinned torch (or one pulled in by another package) is a multi-GB CUDA build.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,gpu,ray]'
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[plot,gpu]'
	touch $@

# The reference on its virtual clock, then the same schedule on the shipped tiny model pair:
# sampled at T = 1 (greedy decoding of this pair is degenerate: acceptance 1.0, blank text),
# every pass padded to fixed waits so the speedup is the schedule's, measured beside acceptance.
demo: $(VENV)/.installed-demo
	$(BIN)/python -m dsi_ref demo
	$(BIN)/python -m gpu_runner run --prompt "def fib(n):" --max-new-tokens 48 --quiet \
		--sample --temperature 1 --seed 1 --k 3 --servers 4 \
		--inject-target 0.03,0.03 --inject-drafter 0.003,0.003

# The same tiny pair and sampling as demo's second part, with real (unpadded) passes and progress bars.
gpu-demo: $(VENV)/.installed-demo
	$(BIN)/python -m gpu_runner run --prompt "def fib(n):" --max-new-tokens 48 \
		--sample --temperature 1 --seed 1 --k 3 --servers 4

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict dsi_ref proofs gpu_runner

# Two workers: CI has two cores, and the suite is CPU-bound (~11 CPU-minutes). loadfile: a
# module's pool or Ray cluster (module fixtures) starts once, on one worker.
unit: $(VENV)/.installed-test coq-install
	$(BIN)/python -m pytest -n 2 --dist loadfile

test: lint typecheck coq unit

proofs: $(VENV)/.installed-test coq
	$(BIN)/python -m proofs check

# Coq 8.16 and mathcomp 1.15 from Debian (CI runs as root); skipped when already there.
COQ_APT := coq libcoq-mathcomp-ssreflect libcoq-mathcomp-algebra
coq-install:
	@if command -v coqc >/dev/null && [ -d "$$(coqc -where)/user-contrib/mathcomp/algebra" ]; \
	then :; else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(COQ_APT) >/dev/null; fi

# The mechanised proofs (proofs/coq): fails when any of them does not check.
coq: $(VENV)/.installed-test coq-install
	$(BIN)/python -m proofs.coq_check

bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds

heatmap: $(VENV)/.installed-test
	$(BIN)/python -m dsi_ref heatmap --out out/figure2

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks out
