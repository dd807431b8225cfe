# The two commands of the README: `make demo` runs the demo exchange, `make test` the tests.
.PHONY: setup demo test lint bench

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/edoc-gateway demo --once

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check gateway signing adapters tests bench

bench: setup
	for b in bench/bench_*.py; do .venv/bin/python $$b || exit 1; done
