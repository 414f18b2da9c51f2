# Everything bootstraps .venv from nothing: only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint soak bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/salespulse run

demo: $(STAMP)
	$(BIN)/salespulse demo

lint: $(STAMP)
	$(BIN)/ruff check bot handlers queries tests bench
	$(BIN)/mypy

test: lint  # the whole suite, the 20,000-event soak included (about 2 minutes of it)
	$(BIN)/python -m pytest -q

soak: $(STAMP)  # the soak alone
	$(BIN)/python -m pytest -q -m soak

screenshots: $(STAMP)  # refresh the README's pictures (needs /usr/bin/chromium)
	SALESPULSE_SCREENSHOTS=docs $(BIN)/python -m pytest -q -m browser

bench: $(STAMP)
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) .salespulse .pytest_cache .mypy_cache .ruff_cache
