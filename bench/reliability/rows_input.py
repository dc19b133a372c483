"""Rows 4 and 5: bad input. Malformed lines of many kinds, and schema drift in the landing data.

Both rows start from one freshly generated day (suite.yaml's volumes, in
``<root>/inputs``), copy its landing, damage the copy, and run the stages on a
fresh warehouse in this process. Lines are counted as Spark's text reader
(Hadoop's LineReader) splits them: on LF, CRLF and a lone CR.
"""
from __future__ import annotations

import gzip
import json
import random
import re
import shutil
import zlib
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import functions as F

from bench.reliability.common import Result, Suite
from jobs.dev.generate import run_generate
from jobs.runtime import storage
from jobs.runtime.layout import Warehouse
from jobs.runtime.quality import GateFailed
from jobs.stages.ingest import run_ingest
from jobs.stages.nightly import run_nightly
from jobs.stages.silver import run_silver
from pipelines.parsing import classify_lines
from pipelines.schemas import IMPRESSIONS

FUZZ_LINES = 10_000


# --- shared input ---------------------------------------------------------------------------------------
def generated_day(suite: Suite) -> tuple[Path, date]:
    """A clean generated landing and its first day: the reference's when another row has built it, else one
    day generated once per suite (suite.yaml's volumes) under ``<root>/inputs``."""
    cached = getattr(suite, "_input_day", None)
    if cached is None:
        ref = suite._reference
        if ref is not None:
            cached = (Path(ref.cfg.paths.landing), ref.days[0])
        else:
            base = suite.fresh_dir("inputs")
            cfg = suite.config("inputs", landing=base / "landing", overrides={"generator": {"days": 1}})
            cached = (base / "landing", date.fromisoformat(sorted(run_generate(suite.spark, cfg, overwrite=True))[0]))
        suite._input_day = cached
    return cached


def copy_landing(src: Path, dst: Path, day: date) -> Path:
    """The day's event and dimension folders of a landing (no generator truth)."""
    shutil.rmtree(dst, ignore_errors=True)
    for folder in [*src.glob(f"*/dt={day}"), *src.glob(f"dims/*/dt={day}")]:
        shutil.copytree(folder, dst / folder.relative_to(src), ignore=shutil.ignore_patterns(".*.crc", "_SUCCESS"))
    return dst


def hadoop_lines(data: bytes) -> list[bytes]:
    """The lines Spark's text reader makes of these bytes: split on CRLF, CR or LF, no line after the last end."""
    parts = re.split(rb"\r\n|\r|\n", data)
    return parts[:-1] if parts and parts[-1] == b"" else parts


def file_bytes(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def relative(uri: str) -> str:
    """A source file as the path below the landing root, whatever URI form it is in."""
    return uri.split("/landing/", 1)[1]


# --- row 4: malformed fuzz --------------------------------------------------------------------------------
def _ts(day: date, rng: random.Random, year: int | None = None) -> str:
    t = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(86_400))
    if year is not None:
        t = t.replace(year=year)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _impression(i: int, day: date, rng: random.Random) -> dict:
    return {"impression_id": f"fuzz-i{i}", "event_ts": _ts(day, rng), "user_id": f"fuzz-u{i % 97}",
            "ad_id": f"fuzz-a{i % 13}", "publisher_id": "fuzz-p1", "position": 1 + i % 5, "device_type": "mobile",
            "country": "FR", "user_agent": "Mozilla/5.0 (fuzz)", "ip": "203.0.113.7", "viewable_pct": 60.0,
            "in_view_ms": 1500, "is_exploration": False}


def _click(i: int, day: date, rng: random.Random) -> dict:
    return {"click_id": f"fuzz-c{i}", "impression_id": f"fuzz-i{i}", "event_ts": _ts(day, rng),
            "user_id": f"fuzz-u{i % 97}", "user_agent": "Mozilla/5.0 (fuzz)", "ip": "203.0.113.7", "dwell_ms": 4000}


def _j(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _kinds(day: date, rng: random.Random) -> dict[str, list[tuple[str, str, bytes]]]:
    """kind -> files to write as (stream, file name, bytes). Each line of each file is bad."""
    n = iter(range(10**9))
    imp = lambda: _impression(next(n), day, rng)
    clk = lambda: _click(next(n), day, rng)

    def lines(make, count: int, end: bytes = b"\n") -> bytes:
        return b"".join(make(k) + end for k in range(count))

    def truncated(_k: int) -> bytes:
        text = _j(imp() if rng.random() < 0.7 else clk())
        return text[: rng.randrange(1, len(text) - 1)].encode()

    def invalid_utf8(_k: int) -> bytes:
        bad = rng.choice([b"\xff\xfe", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc"])
        head, tail = _j(imp()).split('"user_agent":"', 1)
        return head.encode() + b'"user_agent":"' + bad + tail.encode()

    def wrong_type(k: int) -> bytes:
        r = imp()
        field, value = [("position", "top"), ("position", 2.5), ("user_id", {"id": 1}), ("is_exploration", "yes"),
                        ("in_view_ms", "long"), ("viewable_pct", "high"), ("ad_id", ["a1"]),
                        ("in_view_ms", 2**40)][k % 8]
        r[field] = value
        return _j(r).encode()

    def click_wrong_type(k: int) -> bytes:
        r = clk()
        field, value = [("dwell_ms", "4s"), ("user_id", [1]), ("impression_id", {"i": 1}), ("dwell_ms", 1.5)][k % 4]
        r[field] = value
        return _j(r).encode()

    def record(stream: str) -> dict:
        return imp() if stream == "impressions" else clk()

    def null_or_empty_id(stream: str):
        def make(k: int) -> bytes:
            r = record(stream)
            key = "impression_id" if stream == "impressions" else ("click_id", "impression_id")[k % 2]
            r[key] = [None, "", "   "][k % 3]
            return _j(r).encode()
        return make

    def year(stream: str, y: int):
        def make(_k: int) -> bytes:
            r = record(stream)
            r["event_ts"] = _ts(day, rng, y)
            return _j(r).encode()
        return make

    def missing_field(stream: str):
        def make(k: int) -> bytes:
            r = record(stream)
            required = (["impression_id", "event_ts", "user_id", "ad_id", "publisher_id"] if stream == "impressions"
                        else ["click_id", "impression_id", "event_ts", "user_id"])
            del r[required[k % len(required)]]
            return _j(r).encode()
        return make

    def extra_fields(k: int) -> bytes:
        # Unknown fields alone are allowed (CONTRACT 1, and row 5); these carry extra content that makes
        # the record ambiguous: a repeated key, a second record on the same line, text after the object.
        r = imp()
        r["sdk_extra"] = {"nested": [1, 2]}
        text = _j(r)
        variant = k % 4
        if variant == 0:
            return (text[:-1] + ',"user_id":"fuzz-other"}').encode()
        if variant == 1:
            return (text + _j(imp())).encode()
        if variant == 2:
            return (text + "," + _j(imp())).encode()
        return (text + " trailing").encode()

    def bad_timestamp(k: int) -> bytes:
        r = imp()
        r["event_ts"] = ["2025-13-45T99:00:00Z", 1740816723000, "yesterday", "2025-03-01 08:00",
                         "01/03/2025 08:00:00", True][k % 6]
        return _j(r).encode()

    def invalid_value(k: int) -> bytes:
        r = imp()
        field, value = [("position", 0), ("viewable_pct", 150), ("in_view_ms", -5), ("viewable_pct", -0.1)][k % 4]
        r[field] = value
        return _j(r).encode()

    def not_an_object(k: int) -> bytes:
        return [b"[1,2,3]", b'"just text"', b"42", b"null", b"true", _j([imp()]).encode()][k % 6]

    def blank(k: int) -> bytes:
        return [b"", b"   ", b"\t", b"\xef\xbb\xbf"][k % 4]

    mixed = [truncated, invalid_utf8, wrong_type, missing_field("impressions"), null_or_empty_id("impressions")]
    bom_utf8 = b"\xef\xbb\xbf" + lines(lambda k: rng.choice(mixed)(k), 300)
    utf16 = ("".join(_j(imp()) + "\n" for _ in range(100))).encode("utf-16")  # with its BOM FF FE
    cut_whole = gzip.compress(lines(lambda k: _j(clk()).encode(), 600))  # well-formed clicks, then cut
    big = imp()
    big["user_agent"] = "x" * (10 * 1024 * 1024)
    h = "hour=23"
    return {
        "truncated_json": [("impressions", f"{h}/fuzz-truncated.jsonl", lines(truncated, 1000))],
        "invalid_utf8": [("impressions", f"{h}/fuzz-utf8.jsonl", lines(invalid_utf8, 900))],
        "wrong_type": [("impressions", f"{h}/fuzz-types.jsonl", lines(wrong_type, 900)),
                       ("clicks", f"{h}/fuzz-types.jsonl", lines(click_wrong_type, 200))],
        "line_10mb": [("impressions", f"{h}/fuzz-10mb.jsonl", _j(big).encode() + b"\n")],
        "null_or_empty_id": [("impressions", f"{h}/fuzz-ids.jsonl", lines(null_or_empty_id("impressions"), 500)),
                             ("clicks", f"{h}/fuzz-ids.jsonl", lines(null_or_empty_id("clicks"), 400))],
        "timestamp_2100": [("impressions", f"{h}/fuzz-2100.jsonl", lines(year("impressions", 2100), 500))],
        "timestamp_1970": [("clicks", f"{h}/fuzz-1970.jsonl", lines(year("clicks", 1970), 500))],
        "missing_field": [("impressions", f"{h}/fuzz-missing.jsonl", lines(missing_field("impressions"), 600)),
                          ("clicks", f"{h}/fuzz-missing.jsonl", lines(missing_field("clicks"), 300))],
        "extra_fields": [("impressions", f"{h}/fuzz-extra.jsonl", lines(extra_fields, 900))],
        "bad_timestamp": [("impressions", f"{h}/fuzz-ts.jsonl", lines(bad_timestamp, 600))],
        "invalid_value": [("impressions", f"{h}/fuzz-values.jsonl", lines(invalid_value, 400))],
        "not_an_object": [("impressions", f"{h}/fuzz-notobject.jsonl", lines(not_an_object, 300))],
        "bom": [("impressions", f"{h}/fuzz-bom.jsonl", bom_utf8), ("impressions", f"{h}/fuzz-utf16.jsonl", utf16)],
        "windows_line_ends": [("impressions", f"{h}/fuzz-crlf.jsonl",
                               lines(lambda k: rng.choice(mixed)(k), 600, b"\r\n")),
                              ("clicks", f"{h}/fuzz-cr.jsonl", lines(missing_field("clicks"), 200, b"\r"))],
        "blank_lines_and_empty_files": [("impressions", f"{h}/fuzz-blank.jsonl", lines(blank, 300)),
                                        ("impressions", f"{h}/fuzz-empty.jsonl", b""),
                                        ("clicks", f"{h}/fuzz-empty.jsonl.gz", b""),
                                        ("clicks", f"{h}/fuzz-empty2.jsonl.gz", gzip.compress(b""))],
        "gzip_cut_short": [("clicks", f"{h}/fuzz-cut.jsonl.gz", cut_whole[: len(cut_whole) * 2 // 5])],
    }


def malformed_fuzz(suite: Suite) -> Result:
    src, day = generated_day(suite)
    root = suite.fresh_dir("row4")
    landing = copy_landing(src, root / "landing", day)
    rng = random.Random(suite.seed)
    kinds = _kinds(day, rng)
    expected_rows: dict[str, int] = {}   # relative file -> rows Spark's reader will give (quarantine rows wanted)
    written: dict[str, int] = {}         # kind -> bad lines written
    kind_of: dict[str, str] = {}
    for kind, files in kinds.items():
        written[kind] = 0
        for stream, name, data in files:
            rel = f"{stream}/dt={day}/{name}"
            path = landing / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            kind_of[rel] = kind
            if kind == "gzip_cut_short":
                # the lines before the cut, plus the one row that stands for the unreadable rest
                whole_lines = 600
                written[kind] += whole_lines
                expected_rows[rel] = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data).count(b"\n") + 1
            else:
                n = len(hadoop_lines(file_bytes(path) if data else b""))
                written[kind] += n
                expected_rows[rel] = n
    total_written = sum(written.values())

    cfg = suite.config("row4", landing=landing)
    spark = suite.spark
    report = run_nightly(spark, cfg, day, train=False)
    wh = Warehouse(cfg.paths.warehouse)

    # Where every fuzz line went: quarantine rows and bronze rows per fuzz file.
    q = storage.read_delta(spark, wh.quarantine).where(F.col("dt") == F.lit(day))
    q_rows = q.groupBy("source_file", "reason").agg(F.count(F.lit(1)).alias("n")).collect()
    bronze_from_fuzz = {}
    for stream in ("impressions", "clicks"):
        for r in (storage.read_delta(spark, wh.bronze(stream)).where(F.col("dt") == F.lit(day))
                  .groupBy("_source_file").count().collect()):
            if relative(r["_source_file"]) in kind_of:
                bronze_from_fuzz[relative(r["_source_file"])] = r["count"]
    per_kind = {k: {"lines": written[k], "quarantined": 0, "excluded_by_rule": 0, "in_bronze": 0,
                    "reasons": {}} for k in kinds}
    quarantined_from_fuzz = {}
    for r in q_rows:
        rel = relative(r["source_file"])
        if rel not in kind_of:
            continue
        d = per_kind[kind_of[rel]]
        d["quarantined"] += r["n"]
        d["reasons"][r["reason"]] = d["reasons"].get(r["reason"], 0) + r["n"]
        quarantined_from_fuzz[rel] = quarantined_from_fuzz.get(rel, 0) + r["n"]
    for rel, n in bronze_from_fuzz.items():
        per_kind[kind_of[rel]]["in_bronze"] += n

    # Any fuzz record in silver? By id (every fuzz id starts with "fuzz-") in every silver table.
    leaks = {}
    for name, cols in {"impressions": ["impression_id", "user_id"], "clicks": ["click_id", "impression_id"],
                       "click_resolutions": ["click_id"], "labels": ["impression_id"]}.items():
        df = storage.read_delta(spark, wh.silver(name))
        cond = F.lit(False)
        for c in cols:
            cond = cond | F.col(c).startswith("fuzz-")
        rows = df.where(cond).groupBy("fate" if "fate" in df.columns else F.lit("labelled")).count().collect()
        if rows:
            leaks[name] = {str(r[0]): r[1] for r in rows}
    # A fuzz line that passed ingest is allowed only as excluded by a silver rule (a fate other than valid):
    # then it is in bronze and in silver/impressions or silver/clicks with that fate, never in labels.
    excluded = sum(n for t in leaks.values() for f, n in t.items() if f not in ("valid", "attributed", "labelled"))
    in_silver_valid = sum(n for t in leaks.values() for f, n in t.items() if f in ("valid", "attributed", "labelled"))
    for rel, n in bronze_from_fuzz.items():
        per_kind[kind_of[rel]]["excluded_by_rule"] += n

    # The accounting identity, from the run report: every line read is an outcome, and the landing's
    # line count (as Spark splits lines, the cut gzip as its readable lines plus one) is what was read.
    landing_rows = {"impressions": 0, "clicks": 0}
    for stream in landing_rows:
        for path in (landing / stream / f"dt={day}").rglob("*.jsonl*"):
            rel = str(path.relative_to(landing))
            if path.name.startswith((".", "_")):
                continue
            landing_rows[stream] += expected_rows[rel] if rel in expected_rows else len(hadoop_lines(file_bytes(path)))
    identity = {s: {"landing_lines": landing_rows[s], "report_raw": report[f"{s}_raw"],
                    "ingest_read": report["ingest"]["lines"][s]} for s in landing_rows}
    identity_ok = report.get("balanced") is True and all(
        v["landing_lines"] == v["report_raw"] == v["ingest_read"] for v in identity.values())

    got = {rel: quarantined_from_fuzz.get(rel, 0) + bronze_from_fuzz.get(rel, 0) for rel in expected_rows}
    missing = {rel: (expected_rows[rel], got[rel]) for rel in expected_rows if got[rel] != expected_rows[rel]}
    no_reason = sum(r["n"] for r in q_rows if relative(r["source_file"]) in kind_of and not r["reason"])
    quarantined = sum(d["quarantined"] for d in per_kind.values())
    cut_kind = per_kind["gzip_cut_short"]
    cut_kind["note"] = (f"{cut_kind['quarantined'] - 1} readable lines quarantined as truncated_file, plus one row "
                        f"for the unreadable rest; {written['gzip_cut_short'] - cut_kind['quarantined'] + 1} "
                        "lines were lost in the cut and cannot be counted by any reader")
    # A kind's lines are accounted when each of its files gave exactly the rows expected (the cut gzip's
    # lost lines are accounted by the row that refuses its rest).
    accounted_lines = sum(d["lines"] for k, d in per_kind.items()
                          if not any(kind_of[rel] == k for rel in missing))
    passed = (not missing and not in_silver_valid and excluded == sum(bronze_from_fuzz.values()) and not no_reason
              and identity_ok and total_written >= FUZZ_LINES and len(kinds) >= 12
              and accounted_lines == total_written)
    lost = written["gzip_cut_short"] - (cut_kind["quarantined"] - 1)
    figure = (f"{accounted_lines:,}/{total_written:,} bad lines accounted ({quarantined - 1:,} quarantined, "
              f"{lost:,} lost in a cut gzip and refused with it as truncated_file, {excluded:,} excluded by rule), "
              f"{in_silver_valid} in silver as valid, {len(kinds)} kinds")
    problems = []
    if missing:
        problems.append(f"files whose rows are not all quarantined (want, got): {missing}")
    if bronze_from_fuzz:
        problems.append(f"fuzz lines in bronze (allowed only as excluded by rule): {bronze_from_fuzz}")
    if in_silver_valid:
        problems.append(f"fuzz ids in silver as valid events: {leaks}")
    if no_reason:
        problems.append(f"{no_reason} quarantined fuzz rows without a reason")
    if not identity_ok:
        problems.append(f"identity: {identity}, balanced={report.get('balanced')} {report.get('balance_errors')}")
    detail = "; ".join(problems) or (
        f"report balanced; impressions {identity['impressions']['report_raw']:,} read = landed lines, "
        f"clicks {identity['clicks']['report_raw']:,}; cut gzip: {cut_kind['note']}")
    return Result(4, "Malformed fuzz", passed, figure, detail,
                  data={"day": str(day), "kinds": per_kind, "identity": identity, "silver_leaks": leaks,
                        "quarantine_by_reason": report["ingest"]["quarantined_by_reason"]})


# --- row 5: schema drift ----------------------------------------------------------------------------------
def _drift_new_column(obj: dict) -> dict | None:
    obj["sdk_version"] = "5.0.1"
    return obj


def _drift_changed_type(obj: dict) -> dict | None:
    ts = obj.get("event_ts")
    if not isinstance(ts, str):
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    obj["event_ts"] = int(t.timestamp() * 1000)  # the producer switched to epoch milliseconds
    return obj


def _drift_renamed(obj: dict) -> dict | None:
    value = obj.get("user_id")
    if not isinstance(value, str) or not value.strip():
        return None
    return {("userId" if k == "user_id" else k): v for k, v in obj.items()}


def _drift_renamed_optional(obj: dict) -> dict | None:
    if not isinstance(obj.get("in_view_ms"), int):
        return None
    return {("inViewMs" if k == "in_view_ms" else k): v for k, v in obj.items()}


# Producers change at different hours of one night: a new field, event_ts as epoch milliseconds,
# user_id (required) renamed userId, in_view_ms (optional) renamed inViewMs. One night (not one per
# drift) keeps the row to a few minutes.
DRIFTS = {"new_column": (range(12, 15), _drift_new_column),
          "changed_type": (range(15, 18), _drift_changed_type),
          "renamed_field": (range(18, 21), _drift_renamed),
          "renamed_optional_field": (range(21, 24), _drift_renamed_optional)}
IMPRESSION_ID = re.compile(rb'"impression_id":"([^"]*)"')


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def drift_landing(landing: Path, day: date) -> dict[str, tuple[set[str], int]]:
    """Apply each drift to every impression of its hours, in place. Lines that do not parse stay as they are.
    Returns, per drift, the ids all of whose lines it changed (no copy of them elsewhere) and their lines."""
    changed = {name: Counter() for name in DRIFTS}
    every = Counter()
    for path in sorted((landing / "impressions" / f"dt={day}").glob("hour=*/*.jsonl*")):
        hour = int(path.parent.name.split("=")[1])
        name = next((n for n, (hours, _) in DRIFTS.items() if hour in hours), None)
        out = []
        for line in hadoop_lines(file_bytes(path)):
            every.update(m.decode("utf-8", "replace") for m in IMPRESSION_ID.findall(line))
            new = None
            if name is not None:
                try:
                    obj = json.loads(line.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
                    if isinstance(obj, dict) and isinstance(obj.get("impression_id"), str):
                        new = DRIFTS[name][1](dict(obj))
                except (ValueError, UnicodeDecodeError):
                    new = None
            if new is None:
                out.append(line)
            else:
                changed[name][obj["impression_id"]] += 1
                out.append(json.dumps(new, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        data = b"".join(x + b"\n" for x in out)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    out = {}
    for name, ids in changed.items():
        only = {i for i, n in ids.items() if every[i] == n}
        out[name] = (only, sum(ids[i] for i in only))
    return out


def undrifted_outcomes(suite: Suite, src: Path, day: date, hours: range, ids) -> dict[str, int]:
    """How ingest judges the original (undrifted) lines of these ids: "ok" or "reason (detail)" -> lines."""
    files = [str(p) for p in sorted((src / "impressions" / f"dt={day}").glob("hour=*/*.jsonl*"))
             if int(p.parent.name.split("=")[1]) in hours and not p.name.startswith((".", "_"))]
    lines = suite.spark.read.text(files).select("value", F.lit("").alias("source_file"), F.lit(day).alias("dt"),
                                                F.lit(0).alias("hour"))
    judged = classify_lines(lines, IMPRESSIONS, suite.config("row5").ingest).join(ids, "record_id", "left_semi")
    return {("ok" if r["reason"] is None else f"{r['reason']} ({r['detail']})"): r["n"]
            for r in judged.groupBy("reason", "detail").agg(F.count(F.lit(1)).alias("n")).collect()}


def schema_drift(suite: Suite) -> Result:
    src, day = generated_day(suite)
    spark = suite.spark
    root = suite.fresh_dir("row5")
    landing = copy_landing(src, root / "landing", day)
    drifted = drift_landing(landing, day)
    cfg = suite.config("row5", landing=landing)
    wh = Warehouse(cfg.paths.warehouse)
    try:
        lines, _ = run_ingest(spark, cfg, day)
        report = run_silver(spark, cfg, day, {s: sum(c.values()) for s, c in lines.items()})
    except GateFailed as err:
        return Result(5, "Schema drift", False, "a quality gate failed", str(err)[:300])
    on_day = F.col("dt") == F.lit(day)
    bronze = storage.read_delta(spark, wh.bronze("impressions")).where(on_day)
    quarantine = storage.read_delta(spark, wh.quarantine).where(on_day & (F.col("stream") == "impressions"))
    silver = storage.read_delta(spark, wh.silver("impressions")).where(on_day)
    data, outcomes = {}, []
    for name, (ids, n_lines) in drifted.items():
        idf = spark.createDataFrame([(i,) for i in sorted(ids)], "impression_id string")
        before = undrifted_outcomes(suite, src, day, DRIFTS[name][0], idf.withColumnRenamed("impression_id",
                                                                                            "record_id"))
        in_bronze = bronze.join(idf, "impression_id", "left_semi")
        in_silver = silver.join(idf, "impression_id", "left_semi")
        in_q = quarantine.join(idf.withColumnRenamed("impression_id", "record_id"), "record_id", "left_semi")
        d = {"records": len(ids), "lines": n_lines, "in_bronze": in_bronze.count(),
             "in_silver": in_silver.count(),
             "quarantined": {f"{r['reason']} ({r['detail']})": r["count"]
                             for r in in_q.groupBy("reason", "detail").count().collect()},
             "undrifted": before}
        want_q = n_lines - before.get("ok", 0)  # lines ingest quarantines without the drift
        n_q = sum(d["quarantined"].values())
        if name == "new_column":
            # The field changes nothing: each line is kept or quarantined as the generator meant, and every kept
            # one holds the field in bronze's extra; silver does not carry it (CONTRACT 1: ignored after bronze).
            kept = in_bronze.where(F.col("extra")["sdk_version"] == "5.0.1").count()
            d.update(kept_in_extra=kept, silver_has_column="sdk_version" in silver.columns)
            d["passed"] = (kept == d["in_bronze"] == before.get("ok", 0) > 0
                           and d["quarantined"] == {k: v for k, v in before.items() if k != "ok"}
                           and not d["silver_has_column"])
            outcomes.append(f"new column kept in bronze ({kept:,}/{d['lines'] - want_q:,}), not in silver")
        elif name == "renamed_optional_field":
            # CONTRACT 1 keeps the record (its required fields are there) and inViewMs in extra; in_view_ms reads
            # as null ("not measured"). Not silent: the run report names the likely rename.
            kept = in_bronze.where(F.col("extra")["inViewMs"].isNotNull() & F.col("in_view_ms").isNull()).count()
            flagged = report.get("unknown_fields", {}).get("impressions", {}).get("likely_renames", {})
            d.update(kept_in_extra=kept, report_likely_renames=flagged,
                     silver_null_in_view_ms=in_silver.where(F.col("in_view_ms").isNull()).count())
            d["passed"] = (kept == d["in_bronze"] == before.get("ok", 0) > 0
                           and d["quarantined"] == {k: v for k, v in before.items() if k != "ok"}
                           and flagged.get("inViewMs") == "in_view_ms")
            d["null_filled_silently"] = 0 if flagged.get("inViewMs") == "in_view_ms" else d["silver_null_in_view_ms"]
            outcomes.append(f"renamed optional field kept and named in the report as a likely rename "
                            f"({kept:,}/{d['lines'] - want_q:,})")
        else:
            want = "bad_timestamp" if name == "changed_type" else "missing_field"
            n_want = sum(v for k, v in d["quarantined"].items() if k.startswith(want))
            # A line the generator also broke in another field keeps its earlier reason; still quarantined.
            d["passed"] = d["in_bronze"] == 0 and d["in_silver"] == 0 and n_q == d["lines"] > 0 and n_want > 0
            label = "changed type" if name == "changed_type" else "renamed required field"
            outcomes.append(f"{label} quarantined ({n_q:,}/{d['lines']:,}, {n_want:,} as {want})")
        data[name] = d
    null_required = silver.where(F.col("user_id").isNull() | F.col("event_ts").isNull()).count()
    data["silver_null_user_id_or_event_ts"] = null_required
    null_filled = null_required + sum(data[n].get("null_filled_silently", 0) for n in DRIFTS)
    data["report"] = {k: report[k] for k in ("impressions_raw", "impressions_malformed", "impressions_valid",
                                             "balanced", "balance_errors", "unknown_fields")}
    handled = sum(data[n]["passed"] for n in DRIFTS)
    passed = handled == len(DRIFTS) and null_filled == 0 and report["balanced"]
    figure = (f"{handled}/{len(DRIFTS)} drifts handled as documented: " + ", ".join(outcomes)
              + f", {null_filled} silently null-filled")
    detail = ("one night, drift by hour: 12-14 a new field, 15-17 event_ts as epoch ms, 18-20 user_id renamed "
              "userId, 21-23 in_view_ms renamed inViewMs; CONTRACT 1 (unknown fields kept in bronze, ignored "
              "after), 3.1 (quarantine), README run report unknown_fields")
    return Result(5, "Schema drift", passed, figure, detail, data=data)
