# The project's verbs. Every target creates .venv on first use, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build on disk here; GPU users can run `make TORCH_SPEC=torch install` or keep their own torch.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo demo-data report lab bench clean-runs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly notebooks

lint: $(STAMP)
	$(PY) -m ruff check .

demo-data: $(STAMP)
	test -d data/demo || $(PY) -m hw4lib demo-data --out data/demo

demo: demo-data
	$(PY) -m hw4lib demo

report: $(STAMP)
	$(PY) -m hw4lib report

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=.

bench: $(STAMP)
	$(PY) -m benchmarks.bench_model --preset full

clean-runs:
	rm -rf runs
