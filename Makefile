# Two commands for users: `make repro` (the whole pipeline on the embedded default) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup repro test sweep benchmark

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-nodeps.txt
	touch $@

setup: $(VENV)/.installed

repro: setup
	dvc repro

test: setup
	python -m pytest -q

sweep: setup
	python -m scripts.sweep

benchmark: setup
	python -m benchmarks.train_step
