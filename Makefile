# The two commands: `make demo` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all lint bench gpu-check clean

install: $(STAMP)

# The stamp makes `make install` idempotent; it is redone only when the dependency list changes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,cluster]'
	touch $(STAMP)

# The depth study on digits, offline on CPU: plain vs residual at depth 20, 56 and 110, three
# seeds each, jobs in parallel (one per core), then the lesion study (blocks deleted at test time,
# the gradient by path length), the signal study (shattered gradients at initialisation and at
# the end) and the report (figures, findings with mean ± std over the seeds) in the sweep
# directory.
DEMO_DIR := runs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
demo: $(STAMP)
	$(BIN)/resdeep train -m experiment=depth_study hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/resdeep lesion $(DEMO_DIR) --paths
	$(BIN)/resdeep signal --checkpoint $(DEMO_DIR)
	$(BIN)/resdeep report $(DEMO_DIR)
	$(BIN)/resdeep runs $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Everything, the slow end-to-end checks included.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check resdeep tests scripts
	$(BIN)/ruff format --check resdeep tests scripts

bench: $(STAMP)
	$(BIN)/resdeep bench --json bench.json

# Every CUDA path once, each step in its own process, results in gpu_check.json (about 8 minutes
# on one GPU). DEVICE=cpu runs the same steps on CPU at toy sizes; without CUDA it says so, exit 0.
DEVICE ?= cuda
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py --device $(DEVICE)

clean:
	rm -rf $(VENV) build *.egg-info
