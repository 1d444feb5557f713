# Bakery — every command the README names. `make demo` and `make test` work on a fresh clone:
# they create .venv and install the project (plus its dev/local extras) first.

# FC's runtime is python3.10: use one that really runs (a pyenv shim may exist yet refuse), else python3.
PYTHON ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 python3; do \
	  $$p -c 'import sys; assert sys.version_info >= (3, 10)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo demo-localcloud test test-unit test-integration lint format bench chaos serve clean package ros-schema

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup                     ## the main job: four instances baked through template.yml in a local cloud, narrated
	$(BIN)/bakery demo

demo-localcloud: setup          ## the emulator alone, driven by the real SDKs and narrated
	$(BIN)/python -m localcloud demo

test: setup                     ## the whole suite: unit, integration (real SDK -> local cloud), contract
	$(BIN)/python -m pytest -q

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

test-integration: setup
	$(BIN)/python -m pytest -q tests/integration tests/contract

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup                    ## issue 11's figures vs their goals: tests/benchmarks/results/bench.json + a table (BENCH_ARGS=--quick: no 1,000-sized runs)
	$(BIN)/python -m tests.benchmarks.bench --out tests/benchmarks/results/bench.json $(BENCH_ARGS)

chaos: setup                    ## randomized fleets + fault schedules, invariants after every run: tests/chaos/results/
	@status=0; \
	$(BIN)/python tests/chaos/run_chaos.py --seeds 300 --fuzz-events 3 --out tests/chaos/results/chaos.json \
	  || { echo "make chaos: tests/chaos/run_chaos.py FAILED" >&2; status=1; }; \
	$(BIN)/python tests/fuzz/fuzz_events.py --events 10000 --seed 1 --out tests/chaos/results/fuzz.json \
	  || { echo "make chaos: tests/fuzz/fuzz_events.py FAILED" >&2; status=1; }; \
	exit $$status

serve: setup                    ## serve the bundled demo region on 127.0.0.1:8080 until Ctrl-C
	$(BIN)/python -m localcloud serve --port 8080

package: setup                  ## dist/<function>.zip for every function in template.yml (FC python3.10, manylinux x86_64)
	$(BIN)/python -m bakery_tools.package --out dist/

ros-schema: setup               ## rewrite localcloud/fc/ros_schema.json from the pinned ROS CDK packages
	$(BIN)/python -m localcloud.fc.ros_schema_extract regenerate

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
