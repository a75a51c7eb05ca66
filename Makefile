# Two commands on a fresh machine: `make run` (the whole cluster) and `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck bench proto ui-vendor clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	$(BIN)/skiplock up $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# mypy and import-linter do not read setuptools' package-dir, so they check a tree of links
# that lays the folders out as the one installed package, `skiplock`, is.
TYPED = build/typecheck/skiplock
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p $(TYPED)
	@for f in cli/*.py; do ln -s ../../../$$f $(TYPED)/; done
	@for d in api coordinator worker common proto sql ui client; do ln -s ../../../$$d $(TYPED)/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml skiplock
	cd build/typecheck && PYTHONPATH=. ../../$(BIN)/lint-imports ../../pyproject.toml

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@$(BIN)/python -c "import pgqueuer" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench $(ARGS)

# The dashboard's libraries, from the versions pinned in ui/package-lock.json (needs npm).
ui-vendor: $(STAMP)
	$(BIN)/python -m skiplock.ui.vendoring

proto: $(STAMP)
	$(BIN)/python -m skiplock.proto.codegen

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
