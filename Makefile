# nearby — the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Every recipe line that needs the services starts with this: it installs and
# starts what is missing, then exports DATABASE_URL and REDIS_URL.
PROVISION = eval "$$(scripts/provision.sh)"

# The code the house rules hold to: no function of cyclomatic complexity above
# 10 counting boolean operators (radon's rank C or worse; ruff's C901 does not
# count them), no module over 400 lines, the import contracts of setup.cfg.
CODE := discovery indexer scripts
MAX_LINES := 400

.PHONY: demo test bench lint venv provision node clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need python3 (3.11+)"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  [ "$$(id -u)" -eq 0 ] && apt-get install -y -qq python3-venv >/dev/null; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

venv: $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" -eq 0 ] && apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed

provision:
	@$(PROVISION) && echo "DATABASE_URL=$$DATABASE_URL REDIS_URL=$$REDIS_URL"

lint: venv
	$(BIN)/ruff check discovery indexer scripts tests
	$(BIN)/ruff format --check discovery indexer scripts tests
	$(BIN)/mypy
	@complex="$$($(BIN)/radon cc --min C --show-complexity $(CODE))" && \
	  { [ -z "$$complex" ] || { echo "$$complex"; echo "complexity above 10 (radon rank C or worse)"; exit 1; }; }
	@long="$$(find $(CODE) -name '*.py' -o -name '*.lua' | xargs wc -l | \
	  awk '$$1 > $(MAX_LINES) && $$2 != "total"')" && \
	  { [ -z "$$long" ] || { echo "$$long"; echo "modules over $(MAX_LINES) lines"; exit 1; }; }
	$(BIN)/lint-imports --no-cache

test: venv node
	@$(PROVISION) && $(MAKE) --no-print-directory lint && \
	  { scripts/ensure_chromium.sh >/dev/null || echo "chromium unavailable: the browser test will skip"; } && \
	  NEARBY_TEST_DATABASE_URL="$$DATABASE_URL" NEARBY_TEST_REDIS_URL="$$REDIS_URL" \
	  $(BIN)/pytest $(PYTEST_ARGS)

# The demo's feeds are written once at start; staleness is relaxed to a day so
# that its bikes and chargers stay visible while it runs.
demo: venv node
	@$(PROVISION) && export NEARBY_DEBUG=1 NEARBY_API_KEYS=$${NEARBY_API_KEYS:-demo-key} \
	  NEARBY_STALE_BIKE_S=86400 NEARBY_STALE_CHARGER_S=86400 && \
	  BIN=$(BIN) DEMO_ORIGIN=http://$(HOST):$(PORT) scripts/load_demo.sh && \
	  scripts/demo_banner.sh "$(HOST)" "$(PORT)" && \
	  exec $(BIN)/nearby serve --host $(HOST) --port $(PORT)

bench: venv
	@$(PROVISION) && \
	  { scripts/ensure_command.sh wrk wrk >/dev/null || echo "wrk unavailable: the HTTP figures will be skipped"; } && \
	  $(BIN)/python -m scripts.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache *.egg-info
