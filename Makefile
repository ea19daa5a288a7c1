# maelib: `make lab` (install + open the notebooks) and `make test` (install + run every test).
# Override the torch build with e.g. `make test TORCH_SPEC="torch torchvision"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SHARED ?= $(abspath ../shared)
BIN := $(VENV)/bin
STAMP := $(VENV)/.maelib-installed

ifneq ($(wildcard $(SHARED)/weights/torch_home),)
export TORCH_HOME ?= $(SHARED)/weights/torch_home
endif
ifneq ($(wildcard $(SHARED)/data/cmp_facade_base),)
export MAELIB_CMP_DIR ?= $(SHARED)/data/cmp_facade_base
endif
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup lab test test-fast notebooks student-copies bench lint browser-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

lab: setup
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/jupyter lab notebooks/

browser-deps: setup
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser tests will be skipped"

test: setup browser-deps
	$(BIN)/ruff check .
	MAELIB_PROFILE=quick $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest tests -x -q -m "not slow and not browser"

notebooks: setup
	MAELIB_PROFILE=default $(BIN)/python -m maelib.notebook_tools execute notebooks/*.ipynb

student-copies: setup
	$(BIN)/python -m maelib.notebook_tools strip-solutions notebooks/*.ipynb --out student/

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
