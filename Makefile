# decom: `make demo` and `make test` work on a fresh machine; every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
VERSION := $(shell sed -n 's:.*<version>\(.*\)</version><!-- decom-version -->.*:\1:p' jvm-shim/pom.xml)
JAR := jvm-shim/target/decom-shim-$(VERSION).jar
# The shim compiles against the exact Spark 4.3.0 jars pyspark ships (Maven Central has no 4.3.0).
SPARK_JARS = $$($(PY) -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
MVN := mvn -q -B -Dspark.jars.dir=$(SPARK_JARS)
PYTEST_ARGS ?=

.PHONY: setup jar test test-jvm test-py test-lab-long test-repeat lint demo demo-local bench clean

setup: $(VENV)/.installed $(JAR)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

$(JAR): $(VENV)/.installed jvm-shim/pom.xml $(shell find jvm-shim/src/main -type f 2>/dev/null)
	cd jvm-shim && $(MVN) package -DskipTests

jar: $(JAR)

test-jvm: $(VENV)/.installed
	cd jvm-shim && $(MVN) test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check decom yarnlab tests bench
	$(VENV)/bin/mypy

# make test runs one short, real run of each capability; longer lab scenarios are marked `long` and
# run by make test-lab-long (and make bench / make chaos). The 15 slowest tests are printed at the end.
test-py: setup
	$(PY) -m pytest -m "not long" --durations=15 $(PYTEST_ARGS)

test: setup test-jvm lint test-py

test-lab-long: setup
	$(PY) -m pytest -m long --durations=15 $(PYTEST_ARGS)

# Flakiness shows before CI sees it: run one test module (or node id) N times in a row, each in a fresh
# pytest (and a fresh lab), and say how many runs were green. make test-repeat TEST=tests/yarn/test_ha.py N=5
N ?= 5
test-repeat: setup
	@test -n "$(TEST)" || { echo "usage: make test-repeat TEST=tests/yarn/test_ha.py [N=5]" >&2; exit 2; }
	@fails=0; for i in $$(seq 1 $(N)); do \
	  echo "==== run $$i of $(N): $(TEST)"; \
	  $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) $(TEST) || fails=$$((fails + 1)); \
	done; \
	echo "==== $(TEST): $$(($(N) - fails)) of $(N) runs green"; test $$fails -eq 0

# The scale-in story on the real YARN lab (root); without the lab it says so and runs demo-local.
demo: setup
	$(PY) -m bench.yarn_demo

demo-local: setup
	$(PY) -m bench.demo

# The scale-in benchmark on the real YARN lab (root), ~2 hours: Apache YARN, Spark's default timeouts, every
# scenario in every mode (stock, decom, decom + agent), 3 runs each, plus TPC-H q9 checked against DuckDB
# (bench/results/yarn.{json,md,png}). bench-quick: one cell, stock vs decom + agent. bench-local: local-cluster.
bench: setup
	$(PY) -m bench.yarn_bench
bench-quick: setup
	$(PY) -m bench.yarn_bench --quick
bench-local: setup
	$(PY) -m bench.run

clean:
	rm -rf jvm-shim/target dist build .pytest_cache .mypy_cache

# The real-YARN lab (root): RM on the host, one NodeManager per network namespace.
.PHONY: lab-up lab-down test-yarn
lab-up: setup
	$(PY) -m yarnlab up --nodes 4 --shuffle-service
lab-down: $(VENV)/.installed
	$(PY) -m yarnlab down
test-yarn: setup
	$(PY) -m pytest tests/yarn -q

.PHONY: wheel dist
wheel: $(JAR)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@ls dist/decom-$(VERSION)-*.whl

# spark-submit --py-files dist/decom.zip --jars dist/decom-shim-$(VERSION).jar: decom with no code change.
dist: setup
	$(PY) -m decom dist --out dist

# Seeded random scale-in schedules on the YARN lab, stock Spark vs decom (bench/results/chaos.{json,md}).
# Replay one schedule: make chaos CHAOS_ARGS="--seed S --runs 1".
# Chaos at scale, in chunks of at most ~2 h (bench/chaos_long.py), then one table:
#   make chaos CHAOS_ARGS="--long --seed 1 --runs 20"     (--ha: on an HA lab, with RM failovers)
#   (schedule generator 3 by default; --generator 2 replays the first chunks' seeds; --mode decom replays one
#   mode, into a file of its own that merges leave out)
#   make chaos CHAOS_ARGS="--merge bench/results/chaos-long-*.json"
CHAOS_ARGS ?= --seed 1 --runs 4
.PHONY: chaos
chaos: setup
	$(PY) -m bench.chaos $(CHAOS_ARGS)

.PHONY: bench-quick bench-local test-yarn-e2e
test-yarn-e2e: setup
	$(PY) -m pytest tests/yarn/test_scale_in_e2e.py -q
