# Two commands for a new user: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SALSA ?= ../shared/data/cmu61-salsa-bvh
# PyTorch's CPU allocator spends ~45% of conv training in page faults without transparent huge pages.
export THP_MEM_ALLOC_ENABLE := 1

.PHONY: setup browser demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pin torch first: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# The extras too (person: MediaPipe, music: librosa, app: Gradio), so the tests cover them all.
	$(BIN)/pip install -q -e '.[test,person,music,app]'
	# librosa compiles its numba kernels on first use (~1 min): once here, not in a test or a user's first --music
	$(BIN)/python -c "from dancenet.music import warm_up; warm_up()"
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/dancenet generate -o dance.mp4 --seconds 30 --seed 0

# The app's browser tests drive Debian's Chromium (tests/test_app_browser.py); as root with apt, install it
# when missing. Elsewhere those tests skip and say why.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	    else echo "chromium/chromedriver missing and not root: the browser tests will skip"; fi; \
	fi

test: setup browser
	# Two workers (pytest-xdist), one per core of a 2-core machine: each test runs on one torch
	# thread (tests/conftest.py), so one worker would leave a core idle. Files stay together.
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

bench: setup
	test -f data/salsa/manifest.json || $(BIN)/dancenet prepare $(SALSA) --out data/salsa --source-fps 60 --quiet
	$(BIN)/python benchmarks/run_all.py --data $(SALSA)

clean:  # keeps data/ and runs/: they hold your prepared datasets and trained models
	rm -rf $(VENV) dance.mp4
