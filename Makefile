# mailward: `make run` starts every role on SQLite + Maildir under ./var; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The browser tests drive Debian's Chromium (scripts/ensure-browser); Playwright never
# downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@$(BIN)/mailward init --check >/dev/null 2>&1 || $(BIN)/mailward init
	@exec $(BIN)/mailward serve

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	scripts/ensure-postgres
	scripts/ensure-mail-clients
	scripts/ensure-browser
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench

bench: $(VENV)/.installed-dev
	scripts/ensure-postgres
	$(BIN)/python bench/bulk_add.py
	$(BIN)/python bench/mx_throughput.py
	$(BIN)/python bench/pop3_load.py
	$(BIN)/python bench/imap_load.py
	$(BIN)/python bench/filter_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
