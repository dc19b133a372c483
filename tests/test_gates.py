"""The gate plans (pipelines/gates.py): every suite guards a table some stage writes, on the partition it wrote."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from pipelines import gates
from pipelines.schemas import ALL_STREAMS, TABLES

SUITES = {p.stem for p in (Path(__file__).parent.parent / "expectations").glob("*.json")}
D = date(2025, 3, 10)


def plans() -> list[gates.GatePlan]:
    return [gates.ingest_gate(), gates.silver_gate(date(2025, 3, 9), date(2025, 3, 7)),
            gates.gold_gate(date(2025, 3, 9), date(2025, 3, 1), 28), gates.training_set_gate(D),
            gates.backfill_gate(date(2025, 3, 9))]


def test_every_suite_is_some_stages_gate_and_every_checked_table_exists():
    from jobs.runtime.anomalies import STAGES, SUITE

    checked = {suite for p in plans() for suite in p.checked} | {"run_report" for p in plans() if p.report}
    # the anomaly suite checks the metrics of the ingest, silver and gold gates against their history
    assert checked | {SUITE} == SUITES and set(STAGES) <= {p.stage for p in plans()}
    known = set(TABLES) | {f"bronze/{s}" for s in ALL_STREAMS} | {"bronze/quarantine", "gold/features",
                                                                   "gold/priors", "gold/training_set"}
    for p in plans():
        assert set(p.checked.values()) | set(p.unvalidated.values()) <= known, p.stage
        assert set(p.partitions) <= set(p.checked) and set(p.volume_since) <= set(p.checked), p.stage


def test_each_plan_checks_the_partitions_its_stage_wrote():
    silver = gates.silver_gate(date(2025, 3, 9), date(2025, 3, 7))
    assert silver.partitions == {"silver_labels": date(2025, 3, 9), "silver_conversion_labels": date(2025, 3, 7)}
    assert silver.report and not gates.gold_gate(D, None, 28).report
    gold = gates.gold_gate(date(2025, 3, 9), date(2025, 3, 1), 28)
    assert gold.partitions == {"gold_entity_day": date(2025, 3, 9), "gold_features": date(2025, 3, 10)}
    # snapshots grow until the longest window is full: compared day over day from then on
    assert gold.volume_since == {"gold_features": date(2025, 3, 29)}
    assert gates.gold_gate(date(2025, 3, 9), None, 28).volume_since == {"gold_features": date(2025, 4, 6)}
    assert set(gold.unvalidated) == {"gold_priors", "gold_conversion_day"}
    backfill = gates.backfill_gate(date(2025, 3, 9))
    assert backfill.partitions == gold.partitions and backfill.unvalidated == gold.unvalidated
    assert backfill.volume_since == {name: date.max for name in gold.checked}   # never compared
    ingest = gates.ingest_gate()
    assert set(ingest.unvalidated) == {"bronze_users", "bronze_ads", "bronze_campaigns", "bronze_publishers"}
    assert gates.training_set_gate(D).partitions == {"gold_training_set": D}
