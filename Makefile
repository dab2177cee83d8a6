# Two commands do all the set-up on a fresh machine:
#   make serve   install into .venv and start the sandbox with its defaults
#   make test    install the test and examples extras and run the whole test suite
#   make test-python PY=python3.13   the same suite on another interpreter, in .venv-python3.13
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test test-python bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,examples]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/mailsandbox serve

# The tests that hold the server to a time budget (marked `timing` by tests/conftest.py) run on their own
# after the rest: beside the other worker's browsers, containers and spamd they measured the neighbours.
test: $(STAMP)
	$(VENV)/bin/pytest -n 2 --dist loadfile -m "not timing and not fleet"
	$(VENV)/bin/pytest -m timing
	# Where PostgreSQL is installed (CI installs it; tests/store_contract/pg.py says where it looks): the
	# tests of several sandbox processes on one database, then the protocol servers, the web API and the
	# pytest plugin again with each sandbox on a fresh PostgreSQL database, and on asyncio's own event loop
	# (elsewhere the sandbox runs on uvloop, its default where installed).
	if $(VENV)/bin/python -c "from tests.store_contract.pg import pg_bin; raise SystemExit(pg_bin() is None)"; then \
	  $(VENV)/bin/pytest -n 2 --dist loadfile -m fleet && \
	  MAILSANDBOX_TEST_DB=postgresql MAILSANDBOX_TEST_EVENT_LOOP=asyncio $(VENV)/bin/pytest -n 2 --dist loadfile -m "not timing and not browser and not docker" \
	    tests/servers tests/web tests/plugin; \
	else echo "PostgreSQL is not installed: its tests are skipped"; fi

# The image, the browser and the time budgets do not depend on the interpreter: their tests run with
# `make test` only. These run every sandbox on asyncio's own event loop, make test on uvloop.
PY ?= python3
OTHER := .venv-$(notdir $(PY))
test-python:
	$(PY) -m venv $(OTHER)
	$(OTHER)/bin/pip install -q --upgrade pip
	$(OTHER)/bin/pip install -q -e '.[test,examples]'
	MAILSANDBOX_TEST_EVENT_LOOP=asyncio $(OTHER)/bin/pytest -n 2 --dist loadfile -m "not docker and not browser and not timing"

# .lint/mailsandbox: the folders linked in their installed shape (sandbox/ is mailsandbox, web/ and
# pytest_plugin/ inside it), for mypy, which follows no import hooks.
lint: $(STAMP)
	$(VENV)/bin/ruff check sandbox web pytest_plugin tests bench examples
	rm -rf .lint && mkdir -p .lint/mailsandbox
	for f in sandbox/* web pytest_plugin; do ln -s "$(CURDIR)/$$f" .lint/mailsandbox/; done
	$(VENV)/bin/mypy
	MYPYPATH=.lint:tests/plugin $(VENV)/bin/mypy --strict --explicit-package-bases tests
	# each example is a project of its own (its modules import one another by their plain names); one
	# without Python (examples/postgresql: a deployment) has nothing for mypy
	for d in examples/*/; do [ -n "$$(find $$d -name '*.py' -print -quit)" ] || continue; \
	  MYPYPATH=.lint:$$d $(VENV)/bin/mypy --strict --explicit-package-bases $$d || exit 1; done

bench: $(STAMP)
	$(VENV)/bin/python bench/smtp_bench.py
