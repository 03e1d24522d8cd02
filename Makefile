# The project's verbs. Every target creates .venv on first use, so a fresh clone needs only `make demo` / `make test`.
# The tests write only into temporary folders (HW4_OUTPUT, see hw4lib/paths.py): `make test` leaves the tree as it was.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build on disk here; GPU users can run `make TORCH_SPEC=torch install` or keep their own torch.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo demo-data study study-scale report publish-demo publish-study lab bench clean-runs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests
# outside material the notebooks read (hw4lib.paths.env_folder): the copies beside the repository, unless
# the variables are set; an empty value means none (those cells skip)
	out=$$(mktemp -d) && HW4_OUTPUT=$$out \
		HW4_RAIN100L=$${HW4_RAIN100L:-$$(test -d ../shared/data/rain100l && echo ../shared/data/rain100l)} \
		HW4_SNOW100K_MASKS=$${HW4_SNOW100K_MASKS:-$$(test -d ../shared/data/snow100k_masks && echo ../shared/data/snow100k_masks)} \
		$(PY) -m pytest --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly notebooks; rc=$$?; rm -rf $$out; exit $$rc

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

demo-data: $(STAMP)
	test -d data/demo || $(PY) -m hw4lib demo-data --out data/demo

# the demo: three loss variants on the generated data, a few CPU minutes; writes only runs/ (report: runs/demo-report)
demo: demo-data
	$(PY) -m hw4lib demo

# the loss study: 6 losses x 3 seeds + a compute series on real photographs, the long one (the plan and its total
# are printed before the first run); resumable; writes only runs/ (report: runs/study-report).
# On a data set of one's own, e.g. the course's on a GPU (report: runs/<data>-<recipe>[-<preset>]-report):
#   make study DATA=data/hw4_realse_dataset RECIPE=seed PRESET=full SEEDS=0,1,2 [LOSSES=l1,mse,l1_ssim] [DRY_RUN=1]
study: $(STAMP)
	$(PY) -m hw4lib study $(if $(DATA),--data "$(DATA)") $(if $(RECIPE),--recipe "$(RECIPE)") \
		$(if $(PRESET),--preset "$(PRESET)") $(if $(SEEDS),--seeds "$(SEEDS)") $(if $(LOSSES),--losses "$(LOSSES)") \
		$(if $(DRY_RUN),--dry-run)

# the scale series: the seed solution's three losses at 4x the study's steps, 3 seeds each (resumable)
study-scale: $(STAMP)
	$(PY) -m hw4lib study --scale $(if $(DRY_RUN),--dry-run)

# rebuild the committed reports from their committed snapshots (no checkpoints or data needed)
report: $(STAMP)
	$(PY) -m hw4lib report --runs "report/demo/run-data/*" --out report/demo
	test ! -d report/study/run-data || $(PY) -m hw4lib report --runs "report/study/run-data/*" --out report/study

# replace a committed report with the one of your own runs (then commit report/<name>/)
publish-demo: $(STAMP)
	$(PY) -m hw4lib report --runs "runs/demo-*" --out report/demo

publish-study: $(STAMP)
	$(PY) -m hw4lib report --runs "runs/study-*" --out report/study

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=.

bench: $(STAMP)
	$(PY) -m benchmarks.bench_model --preset full

clean-runs:
	rm -rf runs
