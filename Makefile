# mailward: `make run` starts every role on SQLite + Maildir under ./var; `make test` runs the suite.
# Installs come from the hash-locked requirements/run.txt (runtime) and requirements/dev.txt
# (runtime + dev tools); `make lock` refreshes both after a change to pyproject.toml's
# dependencies (`make lock LOCK_ARGS=--upgrade` moves every pin to the newest release).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Parallel pytest workers (pytest-xdist): one per CPU; `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= auto
# The locks target Python 3.11 on Linux x86-64 (this project's machines).
LOCK_FLAGS := --python-version 3.11 --generate-hashes --quiet --custom-compile-command 'make lock'

# The browser tests drive Debian's Chromium (scripts/ensure-browser); Playwright never
# downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test lint bench bench-compare lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip and setuptools come from the lock too, so the project installs without build isolation.
$(VENV)/.installed: pyproject.toml requirements/run.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/run.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	@$(BIN)/mailward init --check >/dev/null 2>&1 || $(BIN)/mailward init
	@exec $(BIN)/mailward serve

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	scripts/ensure-postgres
	scripts/ensure-mail-clients
	scripts/ensure-browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# dev.txt first; run.txt is constrained by it, so both pin the same versions.
lock: $(VENV)/.installed-dev
	$(BIN)/uv pip compile $(LOCK_FLAGS) $(LOCK_ARGS) pyproject.toml requirements/build.in \
		--extra dev -o requirements/dev.txt
	$(BIN)/uv pip compile $(LOCK_FLAGS) $(LOCK_ARGS) pyproject.toml requirements/build.in \
		-c requirements/dev.txt -o requirements/run.txt

bench: $(VENV)/.installed-dev
	scripts/ensure-postgres
	$(BIN)/python bench/bulk_add.py
	$(BIN)/python bench/mx_throughput.py
	$(BIN)/python bench/pop3_load.py
	$(BIN)/python bench/imap_load.py
	$(BIN)/python bench/filter_accuracy.py

# mailward against Postfix and Dovecot (private instances on loopback, installed from Debian
# by scripts/ensure-peers; needs root): `make bench-compare COMPARE_ARGS="--messages 5000"`.
bench-compare: $(VENV)/.installed-dev
	scripts/ensure-postgres
	scripts/ensure-peers
	$(BIN)/python bench/compare.py $(COMPARE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
