# The README's two commands. Both work on a fresh machine: they create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint clean bench docs

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: this machine's pip takes the local CPU build for exactly this spec;
# anything else would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job: demo customers into the embedded SQLite store, then the gateway server on
# 127.0.0.1:8000 (in-process sessions). The demo opens the calling window all day so that the
# printed call works at any hour; set HUASHU_CALLING_WINDOW to enforce your own. The demo runs
# with --insecure-dev (no gateway secret, no agent keys: the server warns at every start); a
# deployment sets HUASHU_GATEWAY_SECRET and HUASHU_AGENT_KEYS instead (docs/server.md).
run: $(STAMP)
	$(BIN)/huashu customers demo
	@echo ""
	@echo "huashu serve → http://127.0.0.1:8000  (SQLite store, in-process sessions; Ctrl-C stops)"
	@echo "  OpenAPI docs : http://127.0.0.1:8000/docs   (schema: http://127.0.0.1:8000/openapi.json)"
	@echo "  Metrics      : http://127.0.0.1:8000/metrics"
	@echo "  Place a call : $(BIN)/huashu gateway-sim --url http://127.0.0.1:8000 --track wecom_add_gift"
	@echo "  (first start trains the NLU model once: a progress bar, then 'Uvicorn running')"
	@echo ""
	HUASHU_CALLING_WINDOW=$${HUASHU_CALLING_WINDOW:-00:00-24:00} $(BIN)/huashu serve --host 127.0.0.1 --port 8000 --insecure-dev

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .

# The documentation site (MkDocs, Material theme) from docs/ into site/; --strict: a broken link
# or a page missing from the nav fails the build (tests/test_docs.py runs the same).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build site *.egg-info
