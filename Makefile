# The two commands a newcomer needs (see README):
#   make demo   set up, build the demo lake, start the explorer
#   make test   set up (incl. Chromium for the browser test), run the whole suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAKE ?= demo_lake
DEMO_DATA := .data/demo
DEMO_CLASSES := 281,967,657,670,872,409,698,985

.PHONY: setup demo demo-lake demo-lake-steps explore test browser clean-demo

setup: $(STAMP)

# torch==2.13.0 first: a bare torch requirement with no torch installed would pull a
# multi-GB CUDA build; the CPU build is what pip finds locally here.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: demo-lake explore

demo-lake: $(STAMP)
	$(MAKE) --no-print-directory demo-lake-steps

# The demo lake's build, step by step, without the set-up prerequisite: the test suite
# builds its CLI-made lake with exactly these steps (tests/conftest.py, `cli_demo_lake`).
demo-lake-steps:
	test -f $(DEMO_DATA)/imagenet64/val_data.npz || $(PY) -m ingest demo-data --out $(DEMO_DATA)
	$(PY) -m ingest npz $(DEMO_DATA)/imagenet64/*.npz --lake $(LAKE)
	$(PY) -m ingest jpeg $(DEMO_DATA)/jpeg --lake $(LAKE)
	$(PY) -m ingest generate --lake $(LAKE) --preset tiny --num-samples 256 --seed 0 --samples-per-class 32 --classes $(DEMO_CLASSES) --layers bottleneck,mid
	$(PY) -m ingest activations --lake $(LAKE) --preset tiny --layers bottleneck,mid --sigmas 0.5,2,10,80 --source all
	$(PY) -m analysis run --lake $(LAKE) --layer bottleneck --sigma 2
	$(PY) -m analysis run --lake $(LAKE) --layer mid --sigma 10

explore: $(STAMP)
	$(VENV)/bin/streamlit run explorer/app.py --server.address 127.0.0.1 --server.headless true -- --lake $(LAKE)

# Debian's chromium drives the explorer's browser test (never `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest

clean-demo:
	rm -rf $(LAKE) $(DEMO_DATA)
