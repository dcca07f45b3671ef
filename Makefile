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

LOCK := requirements.lock
# pip-tools lives in its own venv so that refreshing the lock never changes the project's.
LOCK_TOOLS := $(VENV)/.lock-tools

.PHONY: setup demo demo-lake demo-lake-steps explore test lint browser clean-demo lock lock-upgrade lock-check

# The real CLIP BPE vocabulary for the tiny text-to-image components (models/t2i/clip_vocab.py):
# the pinned open-clip-torch wheel is downloaded, never installed (it needs torchvision), its
# sha256 checked, and only open_clip/bpe_simple_vocab_16e6.txt.gz extracted.
CLIP_BPE := $(VENV)/share/dmd2viz/bpe_simple_vocab_16e6.txt.gz
OPEN_CLIP_WHEEL := open_clip_torch-3.3.0-py3-none-any.whl
OPEN_CLIP_SHA256 := c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce
setup: $(STAMP) $(CLIP_BPE)

$(CLIP_BPE): | $(STAMP)
	mkdir -p $(VENV)/share/dmd2viz/wheel
	$(PY) -m pip download -q --no-deps open-clip-torch==3.3.0 -d $(VENV)/share/dmd2viz/wheel
	echo "$(OPEN_CLIP_SHA256)  $(VENV)/share/dmd2viz/wheel/$(OPEN_CLIP_WHEEL)" | sha256sum -c --quiet -
	$(PY) -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('open_clip/bpe_simple_vocab_16e6.txt.gz'))" \
		$(VENV)/share/dmd2viz/wheel/$(OPEN_CLIP_WHEEL) $@.tmp
	mv $@.tmp $@
	rm -rf $(VENV)/share/dmd2viz/wheel

# Exactly the pinned set from requirements.lock (--no-deps: nothing unpinned sneaks in,
# and the lock pins torch 2.13.0+cpu, the local CPU build, so pip never pulls CUDA),
# then the project itself; `pip check` proves the pinned set is complete and consistent.
# Last, umap-learn's and pynndescent's numba kernels are compiled into numba's disk cache once
# (analysis/warmup.py), as pip compiles .pyc files: otherwise a user's first `analysis run`
# spends 30 s compiling (46 s against 13 s on the demo lake), and so does every test process
# that starts before the cache is written.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	$(PY) -m analysis.warmup
	touch $(STAMP)

# Refresh requirements.lock after editing pyproject.toml's requirement lists: pins that
# still satisfy pyproject.toml are kept; `make lock-upgrade` moves every pin to the newest
# release. The digest header it stamps lets tests/test_lock.py catch a stale lock.
lock:
	test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && \
		$(LOCK_TOOLS)/bin/python -m pip install -q "pip-tools>=7.4,<8"; }
	$(LOCK_TOOLS)/bin/python .ci/lockfile.py constraints > $(LOCK_TOOLS)/constraints.txt
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile -q --allow-unsafe \
		--all-extras --strip-extras --no-emit-index-url --no-emit-find-links \
		-c $(LOCK_TOOLS)/constraints.txt $(LOCK_ARGS) -o $(LOCK) pyproject.toml
	$(LOCK_TOOLS)/bin/python .ci/lockfile.py stamp

lock-upgrade:
	$(MAKE) --no-print-directory lock LOCK_ARGS=--upgrade

# What tests/test_lock.py checks, as one line per disagreement.
lock-check: $(STAMP)
	$(PY) .ci/lockfile.py check

demo: demo-lake explore

# A step that fails says why in one line; a lake left by an older checkout's demo (another
# preset: the demo ran `tiny` before `micro`) is refused, so say how to start afresh.
demo-lake: setup
	@$(MAKE) --no-print-directory demo-lake-steps || { \
		echo "make demo-lake: a step failed (its error is above); if $(LAKE) was made by an older demo, run 'make clean-demo' and then 'make demo'" >&2; exit 2; }

# The demo lake's build, step by step, without the set-up prerequisite: the test suite
# builds its CLI-made lake with exactly these steps (tests/conftest.py, `cli_demo_lake`).
demo-lake-steps:
	test -f $(DEMO_DATA)/imagenet64/val_data.npz -a -f $(DEMO_DATA)/t2i/dmd2_unet.safetensors -a -f $(DEMO_DATA)/teacher_stand_in.pt || $(PY) -m ingest demo-data --out $(DEMO_DATA)
	$(PY) -m ingest npz $(DEMO_DATA)/imagenet64/*.npz --lake $(LAKE)
	$(PY) -m ingest jpeg $(DEMO_DATA)/jpeg --lake $(LAKE)
	$(PY) -m ingest generate --lake $(LAKE) --preset micro --num-samples 256 --seed 0 --samples-per-class 32 --classes $(DEMO_CLASSES) --layers bottleneck,mid
	$(PY) -m ingest generate --lake $(LAKE) --preset micro --num-samples 64 --seed 1 --samples-per-class 8 --classes $(DEMO_CLASSES) --steps 4 --layers bottleneck,mid
	$(PY) -m ingest activations --lake $(LAKE) --preset micro --layers bottleneck,mid --sigmas 0.5,2,10,80 --source all
	$(PY) -m analysis run --lake $(LAKE) --layer bottleneck --sigma 2
	$(PY) -m analysis run --lake $(LAKE) --layer mid --sigma 10
	$(PY) -m analysis trajectory --lake $(LAKE) --layer bottleneck
	$(PY) -m ingest activations --lake $(LAKE) --model teacher-stand-in --preset micro --checkpoint $(DEMO_DATA)/teacher_stand_in.pt --layers bottleneck --sigmas 2 --source all
	$(PY) -m analysis run --lake $(LAKE) --layer teacher-stand-in.bottleneck --sigma 2
	$(PY) -m ingest generate --lake $(LAKE) --model teacher-stand-in --preset micro --checkpoint $(DEMO_DATA)/teacher_stand_in.pt --sampler heun --steps 4 --num-samples 64 --seed 0 --samples-per-class 32 --classes $(DEMO_CLASSES) --layers bottleneck
	$(PY) -m analysis cka --lake $(LAKE) --models micro,teacher-stand-in --sigma 2
	$(PY) -m analysis neighbourhood --lake $(LAKE) --keys bottleneck@sigma2,teacher-stand-in.bottleneck@sigma2
	$(PY) -m analysis sets --lake $(LAKE) --layer bottleneck --sigma 2 --models micro,micro~sigmas80-21.3641-4.19162-0.5
	$(PY) -m ingest generate-t2i --lake $(LAKE) --base $(DEMO_DATA)/t2i/base --checkpoint $(DEMO_DATA)/t2i/dmd2_unet.safetensors --steps 4 --prompts examples/prompts.txt --prompts-from-classes $(DEMO_CLASSES) --samples-per-prompt 4 --seed 0
	$(PY) -m analysis run --lake $(LAKE) --layer dmd2-sdxl-4step.mid --timestep 499
	$(PY) -m analysis trajectory --lake $(LAKE) --layer dmd2-sdxl-4step.mid

explore: setup
	$(VENV)/bin/streamlit run explorer/app.py --server.address 127.0.0.1 --server.headless true -- --lake $(LAKE)

# Debian's chromium drives the explorer's browser test (never `playwright install`).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; \
	fi

# ruff (lint) and mypy (types) as pyproject.toml configures them; `make test` runs both first.
lint: setup
	$(PY) -m ruff check lake ingest models analysis explorer benchmarks tests
	$(PY) -m mypy

# Two pytest-xdist workers, one test module at a time each (--dist loadfile: a module's shared
# lakes and servers are set up once). A serial run left a core idle 45% of the time (subprocess
# start-up, servers, browsers): 848 s serial against 591 s on two workers, same machine.
# `pytest -n 0` runs serially, as one module or test is best debugged.
TEST_WORKERS ?= 2
test: setup browser lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean-demo:
	rm -rf $(LAKE) $(DEMO_DATA)

# --- documentation (docs/; Sphinx + PyData theme) ------------------------------------------
# `make docs`: the demo lake as the CLI builds it (resumed and reused in .data/docs/demo_lake), the
# explorer screenshots in headless Chromium (docs/images/, committed), then the site with
# warnings as errors; the notebook runs against that lake. `make docs-serve` serves the result.
DOCS_LAKE ?= .data/docs/demo_lake
DOCS_OUT := docs/_build/html

.PHONY: docs docs-serve
docs: setup browser
	@$(MAKE) --no-print-directory demo-lake-steps LAKE=$(DOCS_LAKE) || { \
		echo "make docs: building $(DOCS_LAKE) failed (its error is above); if it was made by an older demo, run 'rm -rf $(dir $(DOCS_LAKE)) $(DEMO_DATA)' and then 'make docs'" >&2; exit 2; }
	$(PY) docs/_tools/screenshots.py --lake $(DOCS_LAKE) --out docs/images
	DMD2VIZ_LAKE=$(abspath $(DOCS_LAKE)) $(PY) -m sphinx -W --keep-going -n -b html -d docs/_build/doctrees docs $(DOCS_OUT)
	@echo "docs: open $(DOCS_OUT)/index.html, or run make docs-serve"

docs-serve:
	test -f $(DOCS_OUT)/index.html || $(MAKE) --no-print-directory docs
	$(PY) -m http.server --bind 127.0.0.1 --directory $(DOCS_OUT) 8000

# --- the Explore page's WebGL scatter (explorer/frontend/ -> explorer/static/scatter_gl.js) ------
# Only after changing explorer/frontend/ (never at run time, never in CI): installs the pinned npm
# packages (package-lock.json), bundles them with esbuild and pins the new file's sha256 in
# explorer/scatter_gl.py (tests/explorer/test_scatter_gl.py checks the shipped file against it).
.PHONY: scatter-js
scatter-js:
	cd explorer/frontend && npm ci --no-audit --no-fund && npm run build
	digest=$$(sha256sum explorer/static/scatter_gl.js | cut -d' ' -f1); \
	sed -i "s/^SCRIPT_SHA256 = \"[0-9a-f]*\"/SCRIPT_SHA256 = \"$$digest\"/" explorer/scatter_gl.py; \
	echo "explorer/static/scatter_gl.js sha256 $$digest"
