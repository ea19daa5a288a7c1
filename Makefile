# maelib: `make lab` (install + open the notebooks) and `make test` (install + run every test).
# Override the torch build with e.g. `make test TORCH_SPEC="torch torchvision"`; on a machine without an
# NVIDIA GPU, `make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the much smaller CPU-only build
# (setup says so, in one line before the torch download, when it finds no GPU; it never switches by itself).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu
# "yes" when an NVIDIA GPU is found (nvidia-smi on PATH, or the driver's /proc/driver/nvidia); set it to override
NVIDIA_GPU ?= $(shell (command -v nvidia-smi || ls -d /proc/driver/nvidia) >/dev/null 2>&1 && echo yes)
# PyPI's default torch wheels are the CUDA build on Linux only (about 3 GB of CUDA libraries in the venv)
CPU_NOTICE = $(if $(TORCH_INDEX)$(NVIDIA_GPU)$(filter-out Linux,$(shell uname -s)),,yes)
SETUP_GOAL = $(or $(firstword $(filter lab test test-fast notebooks student-copies bench,$(MAKECMDGOALS))),lab)
INSTALL_CHROMIUM ?= yes
SHARED ?= $(abspath ../shared)
BIN := $(VENV)/bin
STAMP := $(VENV)/.maelib-installed
# JupyterLab refuses to start as root (most containers) without --allow-root; no news / update checks
LAB_FLAGS := --LabApp.news_url=None \
	--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate \
	$(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

ifneq ($(wildcard $(SHARED)/weights/torch_home),)
export TORCH_HOME ?= $(SHARED)/weights/torch_home
endif
ifneq ($(wildcard $(SHARED)/data/cmp_facade_base),)
export MAELIB_CMP_DIR ?= $(SHARED)/data/cmp_facade_base
endif
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg
# OpenMP threads sleep instead of spinning while they wait: beside other work (a notebook kernel, a training
# run) spinning 2-thread jobs collapse to ~0.1 of their quiet rate (benchmarks/bench_busy.py); set it to override.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup lab test test-fast notebooks student-copies slides bench lint browser-deps clean

setup: $(STAMP) $(LAB_OVERRIDES)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	@$(if $(CPU_NOTICE),echo "maelib: no NVIDIA GPU found: the default torch below brings about 3 GB of CUDA \
	libraries; a CPU-only build exists: make $(SETUP_GOAL) TORCH_INDEX=$(CPU_TORCH_INDEX)",:)
	$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) $(TORCH_SPEC)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# JupyterLab settings of this venv: no "official Jupyter news?" toast, no update check
$(LAB_OVERRIDES): $(STAMP)
	@mkdir -p $(dir $@)
	$(BIN)/python -c 'import json, pathlib; p = pathlib.Path("$@"); d = json.loads(p.read_text()) if p.is_file() else {}; d.setdefault("@jupyterlab/apputils-extension:notification", {}).update(fetchNews="false", checkForUpdates=False); p.write_text(json.dumps(d, indent=2) + "\n")'

lab: setup
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/jupyter lab notebooks/ $(LAB_FLAGS)

# The browser test needs Chromium: found on PATH, in $$MAELIB_CHROMIUM or Playwright's cache; otherwise it
# is installed with apt-get (announced; INSTALL_CHROMIUM=no skips that and the browser test is skipped).
browser-deps: setup
	@path="$$($(BIN)/python tests/browser_helpers.py --find-chromium)"; \
	if [ -n "$$path" ]; then echo "browser test: Chromium at $$path"; \
	elif [ "$(INSTALL_CHROMIUM)" != "yes" ]; then \
		echo "browser test: no Chromium found and INSTALL_CHROMIUM=$(INSTALL_CHROMIUM): the browser test will be skipped"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser test: no Chromium found; installing Debian's chromium: apt-get install chromium (INSTALL_CHROMIUM=no to skip)"; \
		(apt-get update -qq && apt-get install -y -qq chromium) \
			|| echo "browser test: chromium could not be installed: the browser test will be skipped"; \
	else \
		echo "browser test: no Chromium found: install chromium (or $(BIN)/python -m playwright install chromium); the browser test will be skipped"; \
	fi

test: setup browser-deps
	$(BIN)/ruff check .
	MAELIB_PROFILE=quick $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest tests -x -q -m "not slow and not browser"

notebooks: setup
	MAELIB_PROFILE=default $(BIN)/python tools/notebook_tools.py execute notebooks/*.ipynb

student-copies: setup
	$(BIN)/python tools/notebook_tools.py strip-solutions notebooks/*.ipynb --out student/

# Slides: a reveal.js deck per notebook in build/slides/, viewable offline (reveal.js and KaTeX are fetched
# once with npm into build/revealjs/, an ignored folder).
slides: setup
	$(BIN)/python tools/slides.py notebooks/*.ipynb --out build/slides

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
