# The two commands of the README. Both set a fresh machine up first.
.PHONY: setup demo test lint down bench

setup:
	@bash deploy/setup.sh

demo: setup
	.venv/bin/ledgerstream demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/pytest -q -p no:cacheprovider

lint: setup
	.venv/bin/ruff check . && .venv/bin/mypy

down:
	.venv/bin/ledgerstream down

bench: setup
	.venv/bin/python bench/run_all.py
