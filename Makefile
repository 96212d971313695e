# Two commands for a fresh machine: `make demo` and `make test`. Each builds .venv from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv  ## start the app on the tiny profile (no network, no GPU)
	$(PY) app.py --profile tiny

test: venv  ## run the test suite (tiny models, no network)
	$(PY) -m pytest -q

bench: venv  ## print the speed benchmarks
	$(PY) benchmarks/spectrogram.py

clean:
	rm -rf $(VENV) .cache tests/artifacts
