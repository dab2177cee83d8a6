# Two commands do all the set-up on a fresh machine:
#   make serve   install into .venv and start the sandbox with its defaults
#   make test    install the test extras and run the whole test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/mailsandbox serve

test: $(STAMP)
	$(VENV)/bin/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check sandbox web pytest_plugin tests bench examples
	$(VENV)/bin/mypy
	MYPYPATH=tests/plugin:examples/password_reset $(VENV)/bin/mypy --strict --explicit-package-bases tests examples

bench: $(STAMP)
	$(VENV)/bin/python bench/smtp_bench.py
