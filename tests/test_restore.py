"""`make restore DATE=...` (jobs/restore.py) puts a warehouse back as it was before a night first ran."""
from __future__ import annotations

from datetime import date

import pytest

from jobs.runtime import checksums, storage
from jobs.runtime.cli import UsageError
from jobs.runtime.layout import Warehouse
from jobs.stages.restore import record_point, restore_night

D = date(2025, 3, 3)


def publish(spark, wh: Warehouse, day: date, rows: list[tuple[int, str]]) -> None:
    """What a night does, in small: a partition of an existing table, a new table, a baseline, a report."""
    df = spark.createDataFrame([(i, v, day) for i, v in rows], "id int, v string, dt date")
    if storage.is_delta(spark, wh.silver("t")):
        storage.write_partition(df, wh.silver("t"), day)
    else:
        df.write.format("delta").partitionBy("dt").save(wh.silver("t"))
    storage.write_json(spark, f"{wh.root}/_quality/metrics/silver_t/dt={day}.json", {"rows": len(rows)})
    storage.write_json(spark, f"{wh.root}/reports/dt={day}/run_report.json", {"date": str(day)})


def test_restore_undoes_a_night_and_refuses_to_undo_later_ones_silently(spark, tmp_path):
    wh = Warehouse(str(tmp_path / "wh"))
    earlier = date(2025, 3, 2)
    record_point(spark, wh, earlier)
    publish(spark, wh, earlier, [(1, "a"), (2, "b")])
    before = checksums.warehouse_checksums(spark, wh.root)
    baselines_before = checksums.baselines(wh.root)

    record_point(spark, wh, D)
    publish(spark, wh, D, [(3, "bad"), (4, "bad")])
    storage.read_delta(spark, wh.silver("t")).limit(1).write.format("delta").save(wh.gold("created_by_D"))
    record_point(spark, wh, D)  # a re-run keeps the first point: "before D ever ran"
    publish(spark, wh, D, [(3, "worse")])
    assert checksums.warehouse_checksums(spark, wh.root) != before

    dry = restore_night(spark, wh, D, dry_run=True)
    assert set(dry["tables"]) == {"silver/t", "gold/created_by_D"} and dry["dry_run"]
    assert checksums.warehouse_checksums(spark, wh.root) != before  # a dry run changes nothing

    later = date(2025, 3, 4)
    record_point(spark, wh, later)
    with pytest.raises(UsageError, match="2025-03-04.*--including-later-nights"):
        restore_night(spark, wh, D)
    done = restore_night(spark, wh, D, including_later=True)
    assert done["baselines_removed"] == 1 and len(done["reports_removed"]) == 1
    assert checksums.warehouse_checksums(spark, wh.root) == before
    assert checksums.baselines(wh.root) == baselines_before
    assert not storage.exists(spark, f"{wh.root}/reports/dt={D}")
    assert storage.exists(spark, f"{wh.root}/reports/dt={earlier}")
    with pytest.raises(UsageError, match="no restore point for 2025-03-09"):
        restore_night(spark, wh, date(2025, 3, 9))
