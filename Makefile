# Two commands do everything on a fresh clone:
#   make demo   creates .venv if missing, installs everything, runs the pipeline on the bundled sample
#   make test   installs and runs the tests (what .ci/run calls)
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/local.yaml

.PHONY: install demo test test-fast bench bench-dedup bench-synthesize bench-train images clean

install:
	VENV=$(VENV) bash scripts/install.sh

demo: install
	$(PY) -m ray_jobs.cli sample sample_data
	$(PY) -m ray_jobs.cli pipeline --config $(CONFIG) --restart

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) bench/curate.py

bench-dedup: install
	$(PY) bench/dedup.py

bench-synthesize: install
	$(PY) bench/synthesize.py

bench-train: install
	$(PY) bench/train.py

images:
	bash scripts/build_images.sh

clean:
	rm -rf runs sample_data .pytest_cache
