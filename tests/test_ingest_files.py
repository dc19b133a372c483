"""Ingest from real files: gzip, CRLF, BOM, invalid UTF-8 bytes, empty files, re-runs."""
from __future__ import annotations

import dataclasses
import gzip
from datetime import date

from pyspark.sql import functions as F

from jobs.runtime import storage
from jobs.runtime.layout import Warehouse
from jobs.stages.ingest import run_ingest

D = date(2025, 4, 1)
GOOD = ('{"impression_id":"%s","event_ts":"2025-04-01T08:00:00Z","user_id":"u1","ad_id":"a1",'
        '"publisher_id":"p1"}')


def write_landing(root):
    hour = root / "impressions" / f"dt={D}" / "hour=08"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_bytes(("\ufeff" + GOOD % "i1" + "\r\n" + GOOD % "i2" + "\r\n").encode("utf-8"))
    (hour / "b.jsonl").write_bytes(b'{"impression_id":"i3","user_id":"\xff\xfe","event_ts":"x"}\n')
    (hour / "empty.jsonl").write_bytes(b"")
    with gzip.open(hour / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(GOOD % "i4" + "\n" + '{"impression_id":"i5"' + "\n")
    (hour / "notes.txt").write_text("not a log file\n")  # outside the contract's *.jsonl[.gz]
    (hour / "d.jsonl._COPYING_").write_text("half a li")  # still being uploaded
    (hour / ".e.jsonl").write_text("hidden\n")
    clicks = root / "clicks" / f"dt={D}" / "hour=08"  # a night without clicks would fail its quality gate
    clicks.mkdir(parents=True)
    (clicks / "a.jsonl").write_text('{"click_id":"c1","impression_id":"i1","event_ts":"2025-04-01T08:00:09Z",'
                                    '"user_id":"u1"}\n')


def test_ingest_reads_every_line_of_every_log_file_once(spark, tiny_cfg, tmp_path):
    write_landing(tmp_path / "landing")
    cfg = dataclasses.replace(tiny_cfg, paths=dataclasses.replace(
        tiny_cfg.paths, landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "wh")))
    counts, _ = run_ingest(spark, cfg, D)
    assert counts["impressions"] == {"ok": 3, "invalid_utf8": 1, "invalid_json": 1}
    assert counts["conversions"] == {} and counts["users"] == {}  # no files: nothing, and no failure
    wh = Warehouse(cfg.paths.warehouse)
    bronze = storage.read_delta(spark, wh.bronze("impressions"))
    assert sorted(r[0] for r in bronze.select("impression_id").collect()) == ["i1", "i2", "i4"]
    assert bronze.where(F.col("hour") != 8).count() == 0

    before = sorted(map(str, storage.read_delta(spark, wh.quarantine).drop("_ingested_at").collect()))
    assert run_ingest(spark, cfg, D)[0] == counts  # a re-run replaces, never appends
    assert storage.read_delta(spark, wh.bronze("impressions")).count() == 3
    assert sorted(map(str, storage.read_delta(spark, wh.quarantine).drop("_ingested_at").collect())) == before


def test_gzip_cut_short_is_quarantined_whole_and_the_night_goes_on(spark, tiny_cfg, tmp_path):
    root = tmp_path / "landing"
    write_landing(root)
    whole = gzip.compress("".join(GOOD % f"cut{i}" + "\n" for i in range(400)).encode())
    cut = root / "impressions" / f"dt={D}" / "hour=09" / "cut.jsonl.gz"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole[: len(whole) // 2])
    cfg = dataclasses.replace(tiny_cfg, paths=dataclasses.replace(
        tiny_cfg.paths, landing=str(root), warehouse=str(tmp_path / "wh")))
    counts, _ = run_ingest(spark, cfg, D)
    assert counts["impressions"]["ok"] == 3 and counts["impressions"]["invalid_utf8"] == 1
    assert counts["impressions"]["truncated_file"] >= 2  # some readable lines, and one row for the lost rest
    q = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).quarantine).where(F.col("reason") == "truncated_file")
    assert q.where(~F.col("source_file").endswith("/hour=09/cut.jsonl.gz") | (F.col("hour") != 9)).count() == 0
    assert q.where(F.col("raw_line") == "").select("detail").collect()[0][0].endswith("could not be read")
    assert q.where(F.col("raw_line") != "").count() == counts["impressions"]["truncated_file"] - 1
    bronze = storage.read_delta(spark, Warehouse(cfg.paths.warehouse).bronze("impressions"))
    assert bronze.where(F.col("impression_id").startswith("cut")).count() == 0
