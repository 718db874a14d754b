# Two commands for users: `make repro` (the whole pipeline on the embedded default) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
# --no-compile: pip would byte-compile every installed module (torch has thousands), about 1.5 of
# the 2.5 minutes an install takes here; Python compiles the modules it imports on first use instead.
PIP := $(PY) -m pip install -q --disable-pip-version-check --no-compile

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
