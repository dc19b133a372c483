# Two commands matter: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/jars/.io.delta_delta-spark_4.1_2.13_4.4.0
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export PYTHONPATH := $(CURDIR)

LANDING ?= data/landing
WAREHOUSE ?= data/warehouse
DEMO_DAYS ?= 3
DEMO_START ?= 2025-03-01
DEMO_IMPRESSIONS ?= 200000
NIGHTLY_CONFIG ?=
# TRAIN=1: train every night (once enough label days are closed), TRAIN=0: never; unset: as train.schedule says.
NIGHTLY_FLAGS = $(if $(filter 1,$(TRAIN)),--train,$(if $(filter 0,$(TRAIN)),--no-train)) $(if $(NIGHTLY_CONFIG),--config $(NIGHTLY_CONFIG))
SPARK_SUBMIT = $(VENV)/bin/spark-submit --driver-memory 6g --conf spark.log.level=WARN --jars "$$(ls .cache/jars/*.jar | paste -sd, -)"

.PHONY: help install jars test demo demo-training backfill bench bench-train training-set train score mlflow-ui clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench,quality,train]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned packages

$(JARS_STAMP): $(STAMP) conf/base.yaml
	$(PY) jobs/fetch_jars.py

jars: $(JARS_STAMP)  ## resolve Delta's JARs from Maven Central once, into .cache/jars

test: $(STAMP) $(JARS_STAMP)  ## run the test suite
	$(PY) -m pytest

demo: $(STAMP) $(JARS_STAMP)  ## generate sample logs and run the nightly pipeline on them
	$(SPARK_SUBMIT) jobs/generate_logs.py --landing $(LANDING) --overwrite \
	    --start $(DEMO_START) --days $(DEMO_DAYS) --impressions-per-day $(DEMO_IMPRESSIONS)
	$(PY) jobs/dates.py --start $(DEMO_START) --days $(DEMO_DAYS) | while read d; do \
	    $(SPARK_SUBMIT) jobs/nightly.py --date $$d --landing $(LANDING) --warehouse $(WAREHOUSE) $(NIGHTLY_FLAGS) || exit $$?; \
	done
	$(PY) jobs/show.py --landing $(LANDING) --warehouse $(WAREHOUSE)

demo-training:  ## the demo with a fourth night that trains (1/1/1-day training set, smaller models)
	$(MAKE) demo DEMO_DAYS=4 NIGHTLY_CONFIG=conf/overlays/demo_training.yaml

backfill: $(STAMP) $(JARS_STAMP)  ## make backfill DATE=YYYY-MM-DD | START=... END=... [TRAIN=0|1] [LANDING=...] [WAREHOUSE=...]
	@dates=$$($(PY) jobs/dates.py --date "$(DATE)" --start "$(START)" --end "$(END)") || exit 2; \
	for d in $$dates; do \
	    echo "== nightly $$d"; \
	    $(SPARK_SUBMIT) jobs/nightly.py --date $$d --landing $(LANDING) --warehouse $(WAREHOUSE) $(NIGHTLY_FLAGS) || exit $$?; \
	done

bench: $(STAMP) $(JARS_STAMP)  ## nights at 1M and 10M impressions, a night with 28 days of history, training at 10M (slow)
	$(PY) bench/run.py --sizes 1000000,10000000 --days 2
	BENCH_SKIP_DUCKDB=1 $(PY) bench/run.py --sizes $${HISTORY_SIZE:-100000} --days 29 --root data/bench-history
	$(PY) bench/train_bench.py --rows 10000000

training-set: $(STAMP) $(JARS_STAMP)  ## build the point-in-time training set [END=YYYY-MM-DD] [WAREHOUSE=...]
	$(SPARK_SUBMIT) jobs/training_set.py --warehouse $(WAREHOUSE) $(if $(END),--end $(END))

train: $(STAMP) $(JARS_STAMP)  ## train, evaluate and gate the CTR models on the training set [WAREHOUSE=...]
	$(SPARK_SUBMIT) jobs/train.py --landing $(LANDING) --warehouse $(WAREHOUSE)

score: $(STAMP) $(JARS_STAMP)  ## make score DATE=YYYY-MM-DD: calibrated CTR for a day with the champion
	$(SPARK_SUBMIT) jobs/score.py --date $(DATE) --warehouse $(WAREHOUSE)

bench-train: $(STAMP) $(JARS_STAMP)  ## distributed vs single-process XGBoost/LightGBM, results table (ROWS=...)
	$(PY) bench/train_bench.py --rows $${ROWS:-500000}

MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
mlflow-ui: $(STAMP)  ## open the MLflow UI on the tracking store (default mlruns/mlflow.db) at http://127.0.0.1:5000
	@mkdir -p mlruns
	$(VENV)/bin/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --default-artifact-root "$(CURDIR)/mlruns/artifacts" --host 127.0.0.1 --port 5000

clean:  ## remove generated data (keeps .venv and the JAR cache)
	rm -rf data spark-warehouse metastore_db derby.log
