# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test faults install check bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/nurture dev

test: install
	$(BIN)/pytest -q

# The fault suite alone (tests/faults: killed workers, a slow SMTP server, Redis restarted, SMTP errors);
# `make test` runs it too. Each run prints sent / duplicates / lost / time to drain at the end.
faults: install
	$(BIN)/pytest -q -m faults tests/faults

check: install
	$(BIN)/nurture check

# Every benchmark (P1-P5, issue 16), then one line per target with its figure; ~30 min. See bench/README.md.
bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache
