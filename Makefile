# The README's two commands. Each first runs the idempotent ./setup.sh.
VENV := .venv/bin
.PHONY: setup demo test test-slow

setup:
	./setup.sh

demo: setup
	$(VENV)/hwgen demo

test: setup
	$(VENV)/python -m pytest -n 2 -q

test-slow: setup
	$(VENV)/python -m pytest -n 2 -q -m slow
