# Two commands on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
# Every target installs what it needs (system FFmpeg, a venv, the package with CPU pins) first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.11 || command -v python3)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# LeRobot 0.6.1 beside the project (its own venv: it needs other pins), for the `lerobot`-marked tests
# (not LEROBOT_VENV, which may name a venv made by hand: `make test` never rebuilds that one).
CI_LEROBOT_VENV ?= $(abspath .venv-lerobot)
LEROBOT_SETUP ?= ../shared/tools/lerobot-venv/setup.sh
# What `pip install lerobot-wds` gives a new user: no constraints, the newest torch and torchcodec served.
NEWEST_VENV ?= .venv-newest

.PHONY: setup demo lint typecheck test test-pinned test-newest lerobot-venv newest-venv soak test-all bench bench-stacks \
	bench-convert-scale packaging-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	@command -v ffmpeg >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# constraints-cpu.txt pins torch 2.13.0 (CPU wheel) and torchcodec 0.13.0 for every install
	$(PY) -m pip install -q -c constraints-cpu.txt -e '.[dev]'
	@touch $@

demo: setup
	$(PY) scripts/demo.py

lint: setup
	$(VENV)/bin/ruff check src tests scripts examples
	$(VENV)/bin/ruff format --check src tests scripts examples

typecheck: setup
	$(VENV)/bin/mypy

test: lint typecheck packaging-check test-pinned test-newest soak

# The whole suite on the pinned stack, with LeRobot itself: a skipped LeRobot test fails (tests/require_lerobot.py).
test-pinned: setup lerobot-venv
	LEROBOT_VENV=$(CI_LEROBOT_VENV) LEROBOT_WDS_REQUIRE_LEROBOT=1 $(PY) -m pytest -m "not network and not gpu" $(PYTEST_ARGS)

# The non-slow suite (golden parity and the fast path included) on the newest stack; LeRobot runs above.
test-newest: newest-venv
	$(NEWEST_VENV)/bin/python -c "import torch, torchcodec; print('newest stack: torch', torch.__version__, \
		'torchcodec', torchcodec.__version__)"
	$(NEWEST_VENV)/bin/python -m pytest -m "not network and not gpu and not slow and not lerobot" $(PYTEST_ARGS)

lerobot-venv: $(CI_LEROBOT_VENV)/.installed

$(CI_LEROBOT_VENV)/.installed: $(LEROBOT_SETUP)
	bash $(LEROBOT_SETUP) $(CI_LEROBOT_VENV)
	@touch $@

newest-venv: $(NEWEST_VENV)/.installed

# Rebuilt when pyproject.toml changes; `rm -r .venv-newest` picks up releases published since.
$(NEWEST_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/pip install -q --upgrade pip
	$(NEWEST_VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

# 2 ranks x 2 workers on SeaweedFS through the fault proxy, killed and resumed 4 times, a hung server once;
# exits 1 on any ledger error (a sample lost or repeated) or broken bound (scripts/soak.py; ~3 min here).
# Longer: `$(PY) scripts/soak.py --minutes 60 --out benchmarks/results/soak.json`.
soak: setup
	$(PY) scripts/soak.py

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Installs without extras into a throwaway venv and runs the console script.
packaging-check: setup
	rm -rf $(VENV)-pkg && $(PYTHON) -m venv $(VENV)-pkg
	$(VENV)-pkg/bin/pip install -q -c constraints-cpu.txt .
	$(VENV)-pkg/bin/lerobot-wds --help >/dev/null && echo "packaging-check: lerobot-wds --help OK"
	rm -rf $(VENV)-pkg

# LEROBOT_VENV=/tmp/lerobot-venv adds LeRobot 0.6.1 side by side (../shared/tools/lerobot-venv/setup.sh).
# Results in benchmarks/results/; then plots in benchmarks/plots/ and the tables of BENCHMARKS.md from them.
bench: setup
	$(PY) scripts/bench_convert.py
	$(PY) scripts/bench_plan.py
	$(PY) scripts/bench_read.py $(if $(LEROBOT_VENV),--lerobot-venv $(LEROBOT_VENV))
	$(PY) scripts/bench_sweep.py
	$(PY) scripts/bench_remote.py
	$(PY) scripts/bench_remote_source.py
	$(PY) scripts/bench_threads.py
	$(PY) scripts/bench_mixture.py
	$(PY) scripts/bench_balance.py
	$(PY) scripts/bench_cluster_plan.py
	$(PY) scripts/plot_bench.py

# The reader and torchcodec's decode paths on the pinned and the newest stack in one run, LeRobot 0.6.1
# beside them (issue 24 part 3); g1 and bench, workers 0 and 2 (8-14 min, then 3-4 min of bench_blocks).
bench-stacks: setup newest-venv lerobot-venv
	$(PY) scripts/bench_stacks.py --stack pinned=$(PY) --stack newest=$(NEWEST_VENV)/bin/python \
		--lerobot-venv $(CI_LEROBOT_VENV) --datasets g1 bench
	$(PY) scripts/bench_blocks.py --stack pinned=$(PY) --stack newest=$(NEWEST_VENV)/bin/python
	$(PY) scripts/plot_bench.py

# The converter at scale (issue 14), on a quiet machine: planning 1k-130k episodes (synthetic, sparse),
# 1 vs 2 workers on g1 x40 (400 episodes, ~1.3 GB in /tmp) and the routes (local, task-index, Ray) on g1 x4.
bench-convert-scale: setup
	$(PY) scripts/bench_convert_plan.py
	$(PY) scripts/make_big_source.py --repeat 80 --dest /tmp/g1x80 --overwrite
	$(PY) scripts/bench_workers.py --source /tmp/g1x80 --episodes 10,40,100,200,400,800
	$(PY) scripts/make_big_source.py --repeat 4 --dest /tmp/g1x4 --overwrite
	$(PY) scripts/bench_routes.py --source /tmp/g1x4
	$(PY) scripts/plot_bench.py
