# Two commands for a fresh machine: `make demo` and `make test`. Each builds .venv from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast venv browser bench clean real-data

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv  ## start the app on the tiny profile (no network, no GPU)
	$(PY) app.py --profile tiny

browser:  ## Debian's Chromium for the browser test (Playwright drives it; it downloads no browser of its own)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "The browser tests need Chromium: install it as root (apt-get install chromium), or run make test-fast."; exit 1; }

test: venv browser  ## run the whole test suite (tiny models, no network): what CI runs
	$(PY) -m pytest -q

test-fast: venv  ## the quick set while editing (about 3 minutes): no browser, nothing marked slow
	$(PY) -m pytest -q -m "not browser and not slow"

real-data: venv  ## download the original projects' files the tests compare with (12 MB, pinned, checksummed) into .cache/real-data
	$(PY) -m scripts.real_data fetch

bench: venv  ## print the speed benchmarks (the fullsize one builds ~16 GB of random full-size models once)
	$(PY) benchmarks/spectrogram.py
	$(PY) benchmarks/fullsize.py $(FULLSIZE_ARGS)

clean:
	rm -rf $(VENV) .cache tests/artifacts
