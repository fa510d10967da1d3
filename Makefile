# The two commands a newcomer runs (see README):
#   make serve   -> serves the tutorial notebooks and examples on http://localhost:5006
#   make test    -> lint (ruff) and type check (mypy --strict), then the whole test suite
PORT ?= 5006
PYTEST_ARGS ?=

.PHONY: serve test soak docs bench

serve:
	./scripts/bootstrap.sh serve
	.venv/bin/kernelstate serve notebooks/ examples/ --port $(PORT) --address 127.0.0.1

test:
	./scripts/bootstrap.sh test
	.venv/bin/ruff check kernelstate
	.venv/bin/mypy
	PATH="$(CURDIR)/.venv/node/bin:$$PATH" .venv/bin/python -m pytest $(PYTEST_ARGS)

soak:
	./scripts/bootstrap.sh test
	PATH="$(CURDIR)/.venv/node/bin:$$PATH" .venv/bin/python -m pytest -m soak tests/reliability

docs:
	./scripts/bootstrap.sh test
	.venv/bin/python scripts/build_docs.py

bench:
	./scripts/bootstrap.sh test
	.venv/bin/python bench/run.py
