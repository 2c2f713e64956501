# closeloop: `make run` starts the product with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export OMP_THREAD_LIMIT := 1
PYTHON ?= $(shell command -v python3)
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
BIN := .venv/bin

.PHONY: run install test lint test-sqlite test-postgres bench screenshots clean

$(UV):
	$(PYTHON) -m pip install --quiet --target .tools/lib uv==0.13.9
	mkdir -p .tools/bin && ln -sf ../lib/bin/uv .tools/bin/uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen -p "$(PYTHON)"
	touch $@

install: .venv/.synced
	scripts/system-deps run

run: install
	CLOSELOOP_DEVELOPMENT=$${CLOSELOOP_DEVELOPMENT:-1} $(BIN)/closeloop run

lint: .venv/.synced
	$(BIN)/ruff check .
	$(BIN)/mypy closeloop
	CLOSELOOP_DEVELOPMENT=1 CLOSELOOP_DATA_DIR=$$(mktemp -d) $(BIN)/closeloop makemigrations --check --dry-run

test-sqlite: .venv/.synced
	$(BIN)/pytest --db sqlite

test-postgres: .venv/.synced
	$(BIN)/pytest --db postgres

test: .venv/.synced
	scripts/system-deps test
	$(MAKE) lint
	$(MAKE) test-sqlite
	$(MAKE) test-postgres

bench: .venv/.synced
	$(BIN)/python bench/actions.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/understanding.py
	$(BIN)/python bench/followups.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/analytics.py

clean:
	rm -rf .venv .tools var

screenshots: .venv/.synced
	CLOSELOOP_DEVELOPMENT=1 $(BIN)/closeloop screenshots
