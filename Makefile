# Two commands matter: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/jars/.io.delta_delta-spark_4.1_2.13_4.4.0
DOCS_STAMP := .cache/docs_assets/manifest.json
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export PYTHONPATH := $(CURDIR)

LANDING ?= data/landing
WAREHOUSE ?= data/warehouse
DEMO_DAYS ?= 7
# the demo's last night trains (--train): conf/overlays/demo_training.yaml (a 2/1/1-day training set after two
# days of history); DEMO_CONFIG= leaves it out and follows the base schedule
DEMO_CONFIG ?= conf/overlays/demo_training.yaml
DEMO_START ?= 2025-03-01
DEMO_IMPRESSIONS ?= 100000
NIGHTLY_CONFIG ?=
# TRAIN=1: train every night (once enough label days are closed), TRAIN=0: never; unset: as train.schedule says.
NIGHTLY_FLAGS = $(if $(filter 1,$(TRAIN)),--train,$(if $(filter 0,$(TRAIN)),--no-train)) $(if $(NIGHTLY_CONFIG),--config $(NIGHTLY_CONFIG))
SPARK_SUBMIT = $(VENV)/bin/spark-submit --driver-memory 6g --conf spark.log.level=WARN --jars "$$(ls .cache/jars/*.jar | paste -sd, -)"

.PHONY: help install jars lint test demo catalog backfill-feature demo-training demo-quick backfill bench bench-train bench-quality bench-quality-gap bench-watch bench-parity bench-score training-set train score mlflow-ui clean \
        cluster-up cluster-down cluster-status demo-cluster zip \
        reliability restore

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench,quality,train]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned packages

$(JARS_STAMP): $(STAMP) conf/base.yaml | $(DOCS_STAMP)
	$(PY) jobs/fetch_jars.py

$(DOCS_STAMP): jobs/fetch_docs_assets.py | $(STAMP)
	$(PY) jobs/fetch_docs_assets.py

jars: $(JARS_STAMP)  ## resolve Delta's JARs from Maven Central once, into .cache/jars (and the Data Docs' CSS/JS from npm, into .cache/docs_assets)

test: lint $(JARS_STAMP)  ## lint, then run the test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff over the code (its rules in pyproject.toml)
	$(PY) -m ruff check .

demo: $(STAMP) $(JARS_STAMP)  ## generate 7 days of sample logs and run the nightly pipeline on them; the last night trains and scores
	$(SPARK_SUBMIT) jobs/generate_logs.py --landing $(LANDING) --overwrite \
	    --start $(DEMO_START) --days $(DEMO_DAYS) --impressions-per-day $(DEMO_IMPRESSIONS)
	@# the nights in one spark-submit (one JVM); with DEMO_CONFIG the last night, which trains, in a second
	dates=$$($(PY) jobs/dates.py --start $(DEMO_START) --days $(DEMO_DAYS)) || exit 2; \
	first=$$(head -n 1 <<< "$$dates"); last=$$(tail -n 1 <<< "$$dates"); \
	before=$$(tail -n 2 <<< "$$dates" | head -n 1); \
	if [ -n "$(DEMO_CONFIG)" ] && [ -z "$(TRAIN)" ] && [ "$$first" != "$$last" ]; then \
	    $(SPARK_SUBMIT) jobs/nightly.py --start $$first --end $$before --landing $(LANDING) --warehouse $(WAREHOUSE) \
	        --config $(DEMO_CONFIG) $(NIGHTLY_FLAGS) || exit $$?; \
	    first=$$last; \
	fi; \
	$(SPARK_SUBMIT) jobs/nightly.py --start $$first --end $$last --landing $(LANDING) --warehouse $(WAREHOUSE) \
	    $(if $(DEMO_CONFIG),--config $(DEMO_CONFIG) $(if $(TRAIN),,--train)) $(NIGHTLY_FLAGS) || exit $$?
	$(SPARK_SUBMIT) jobs/catalog.py --warehouse $(WAREHOUSE)
	$(PY) jobs/show.py --landing $(LANDING) --warehouse $(WAREHOUSE)

demo-training:  ## the same as make demo (kept for older scripts)
	$(MAKE) demo

demo-quick:  ## the demo without training: 3 nights, the default schedule
	$(MAKE) demo DEMO_DAYS=3 DEMO_CONFIG= DEMO_IMPRESSIONS=200000

backfill: $(STAMP) $(JARS_STAMP)  ## make backfill DATE=YYYY-MM-DD | START=... END=... [TRAIN=0|1] [LANDING=...] [WAREHOUSE=...]
	@dates=$$($(PY) jobs/dates.py --date "$(DATE)" --start "$(START)" --end "$(END)") || exit 2; \
	first=$$(head -n 1 <<< "$$dates"); last=$$(tail -n 1 <<< "$$dates"); \
	echo "== nightly $$first .. $$last"; \
	$(SPARK_SUBMIT) jobs/nightly.py --start $$first --end $$last --landing $(LANDING) --warehouse $(WAREHOUSE) \
	    $(NIGHTLY_FLAGS) || exit $$?

bench: $(STAMP) $(JARS_STAMP)  ## nights at 1M and 10M impressions, a night with 28 days of history, training at 10M, model quality (slow)
	$(PY) bench/run.py --sizes 1000000,10000000 --days 2
	BENCH_SKIP_DUCKDB=1 $(PY) bench/run.py --sizes $${HISTORY_SIZE:-100000} --days 29 --root data/bench-history
	$(PY) bench/train_bench.py --rows 10000000
	$(MAKE) bench-quality

bench-quality: $(STAMP) $(JARS_STAMP)  ## logs -> nightly jobs -> training set -> every model, against the truth [DAYS=14] [IMPRESSIONS=100000] [LANDING_IN=dir] (slow)
	$(PY) bench/quality_bench.py --days $${DAYS:-14} --impressions $${IMPRESSIONS:-100000} $(if $(LANDING_IN),--landing $(LANDING_IN))

bench-watch: $(STAMP) $(JARS_STAMP)  ## detection drills: generated logs with three faults through the nightly jobs, each flagged on its night [DAYS=15] [IMPRESSIONS=20000] [REJUDGE=1: the last run's nights, current checks]
	$(PY) bench/watch_drills.py --days $${DAYS:-15} --impressions $${IMPRESSIONS:-20000} $${REJUDGE:+--rejudge}

bench-quality-gap: $(STAMP) $(JARS_STAMP)  ## after bench-quality (same DAYS/IMPRESSIONS): what each hidden term of the click model is worth, and oracle features
	$(PY) bench/quality_gap.py --days $${DAYS:-14} --impressions $${IMPRESSIONS:-100000}

reliability: $(STAMP) $(JARS_STAMP)  ## faults, bad input and privacy drills, one table of figures [ROWS=1,4] [KILLS=20] (slow)
	$(PY) -m bench.reliability.run $(if $(ROWS),--rows $(ROWS)) $(if $(KILLS),--kills $(KILLS)) $(if $(LOAD_BASE),--load-base $(LOAD_BASE))

restore: $(STAMP) $(JARS_STAMP)  ## make restore DATE=YYYY-MM-DD [WAREHOUSE=...] [FLAGS=--dry-run]: undo a published night
	@$(PY) jobs/dates.py --date "$(DATE)" > /dev/null || exit 2
	$(SPARK_SUBMIT) jobs/restore.py --date $(DATE) --warehouse $(WAREHOUSE) $(FLAGS)

training-set: $(STAMP) $(JARS_STAMP)  ## build the point-in-time training set [END=YYYY-MM-DD] [WAREHOUSE=...]
	$(SPARK_SUBMIT) jobs/training_set.py --warehouse $(WAREHOUSE) $(if $(END),--end $(END))

train: $(STAMP) $(JARS_STAMP)  ## train, evaluate and gate the CTR models on the training set [WAREHOUSE=...]
	$(SPARK_SUBMIT) jobs/train.py --landing $(LANDING) --warehouse $(WAREHOUSE)

score: $(STAMP) $(JARS_STAMP)  ## make score DATE=YYYY-MM-DD: the champion's calibrated CTR for every impression landed that day
	$(SPARK_SUBMIT) jobs/score.py --date $(DATE) --warehouse $(WAREHOUSE)

backfill-feature: $(STAMP) $(JARS_STAMP)  ## make backfill-feature NAME=group [START=D END=D]: one new or changed feature group for history, alone
	$(SPARK_SUBMIT) jobs/backfill_feature.py --name "$(NAME)" --warehouse $(WAREHOUSE) $(if $(START),--start $(START)) $(if $(END),--end $(END))

catalog: $(STAMP) $(JARS_STAMP)  ## the feature catalog (features.md, features.html): every declared feature, its data, its value in the champion [WAREHOUSE=...]
	$(SPARK_SUBMIT) jobs/catalog.py --warehouse $(WAREHOUSE)

bench-parity: $(STAMP) $(JARS_STAMP)  ## what the training/serving parity rule changes and costs, on a warehouse whose nights ran (after make demo)
	$(PY) bench/parity_bench.py --warehouse $(WAREHOUSE) $(if $(DEMO_CONFIG),--config $(DEMO_CONFIG))

bench-score: $(STAMP) $(JARS_STAMP)  ## scoring throughput per landed day and a score-monitoring row per closed day, with the champion (after make demo) [IMPRESSIONS=n: also a generated next day of n, on a copy]
	$(PY) bench/score_bench.py --warehouse $(WAREHOUSE) $(if $(DEMO_CONFIG),--config $(DEMO_CONFIG)) \
	    $(if $(IMPRESSIONS),--next-day-impressions $(IMPRESSIONS))

bench-train: $(STAMP) $(JARS_STAMP)  ## distributed vs single-process XGBoost/LightGBM, results table (ROWS=...)
	$(PY) bench/train_bench.py --rows $${ROWS:-500000}

MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
mlflow-ui: $(STAMP)  ## open the MLflow UI on the tracking store (default mlruns/mlflow.db) at http://127.0.0.1:5000
	@mkdir -p mlruns
	$(VENV)/bin/mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --default-artifact-root "$(CURDIR)/mlruns/artifacts" --host 127.0.0.1 --port 5000

# A standalone cluster on this machine (scripts/cluster.sh): master and two 1-core workers, loopback only.
CLUSTER_MASTER := spark://127.0.0.1:7077
CLUSTER_LANDING ?= data/cluster-landing
CLUSTER_WAREHOUSE ?= data/cluster-warehouse
CLUSTER_DAYS ?= 5
CLUSTER_IMPRESSIONS ?= 20000
CLUSTER_MLFLOW := sqlite:///$(CURDIR)/data/cluster-mlruns/mlflow.db
CLUSTER_EVENTLOG := $(CURDIR)/data/cluster-eventlog
CLUSTER_CONF := --env cluster --config conf/demo-cluster.yaml
ZIP := dist/ctr_jobs.zip
# Client mode: the driver runs here (it reads conf/ and expectations/ and holds the MLflow store),
# executors run on the workers and get the code only from --py-files. Paths are absolute: every
# executor must see the same storage (here the local disk; on a real cluster HDFS or an object store).
CLUSTER_SUBMIT = SPARK_LOCAL_IP=127.0.0.1 $(VENV)/bin/spark-submit --master $(CLUSTER_MASTER) --deploy-mode client \
    --driver-memory 3g --executor-memory 1g --executor-cores 1 --total-executor-cores 2 \
    --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
    --conf spark.pyspark.python=$(abspath $(PY)) --conf spark.log.level=WARN \
    --conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false --conf spark.eventLog.dir=file://$(CLUSTER_EVENTLOG) \
    --jars "$$(ls .cache/jars/*.jar | paste -sd, -)" --py-files $(ZIP)

cluster-up: $(STAMP)  ## start a Spark master and two workers on 127.0.0.1 (UI http://127.0.0.1:8080)
	scripts/cluster.sh up

cluster-down:  ## stop the cluster's workers and master
	scripts/cluster.sh down

cluster-status:  ## the master's view: workers, cores in use, applications
	scripts/cluster.sh status

$(ZIP): scripts/build_zip.py $(shell find jobs pipelines -name '*.py')
	$(PY) scripts/build_zip.py $(ZIP)

zip: $(ZIP)  ## build dist/ctr_jobs.zip, the code executors get through --py-files

demo-cluster: $(STAMP) $(JARS_STAMP) $(ZIP)  ## after cluster-up: generate, nightly per date, training set, XGBoost + LightGBM on the cluster
	@scripts/cluster.sh status >/dev/null || { echo "error: no cluster with two workers at $(CLUSTER_MASTER); run make cluster-up first" >&2; exit 1; }
	@rm -rf $(CLUSTER_EVENTLOG) && mkdir -p $(CLUSTER_EVENTLOG)
	$(CLUSTER_SUBMIT) scripts/cluster_check.py --executors 2
	$(CLUSTER_SUBMIT) jobs/generate_logs.py --landing $(abspath $(CLUSTER_LANDING)) --overwrite $(CLUSTER_CONF) \
	    --start $(DEMO_START) --days $(CLUSTER_DAYS) --impressions-per-day $(CLUSTER_IMPRESSIONS)
	$(PY) jobs/dates.py --start $(DEMO_START) --days $(CLUSTER_DAYS) | while read d; do \
	    echo "== nightly $$d on $(CLUSTER_MASTER)"; \
	    $(CLUSTER_SUBMIT) jobs/nightly.py --date $$d --landing $(abspath $(CLUSTER_LANDING)) \
	        --warehouse $(abspath $(CLUSTER_WAREHOUSE)) $(CLUSTER_CONF) --no-train || exit $$?; \
	done
	$(CLUSTER_SUBMIT) jobs/training_set.py --warehouse $(abspath $(CLUSTER_WAREHOUSE)) $(CLUSTER_CONF)
	MLFLOW_TRACKING_URI=$(CLUSTER_MLFLOW) $(CLUSTER_SUBMIT) jobs/train.py --landing $(abspath $(CLUSTER_LANDING)) \
	    --warehouse $(abspath $(CLUSTER_WAREHOUSE)) $(CLUSTER_CONF)
	$(PY) jobs/show.py --landing $(CLUSTER_LANDING) --warehouse $(CLUSTER_WAREHOUSE)
	$(PY) scripts/eventlog_summary.py $(CLUSTER_EVENTLOG)
	@echo ""
	@echo "Cluster run, where to look:"
	@echo "  training set        $(abspath $(CLUSTER_WAREHOUSE))/gold/training_set (manifest: gold/training_set.json)"
	@echo "  MLflow runs         make mlflow-ui MLFLOW_TRACKING_URI=$(CLUSTER_MLFLOW)"
	@echo "  master UI           http://127.0.0.1:8080 (applications, their executors; make cluster-status)"
	@echo "  executor logs       data/cluster/work/worker-*/app-*/*/std{out,err}"
	@echo "  event logs          $(CLUSTER_EVENTLOG)"

clean:  ## stop the local cluster, remove generated data and dist/ (keeps .venv and the JAR cache)
	scripts/cluster.sh down
	rm -rf data dist spark-warehouse metastore_db derby.log
