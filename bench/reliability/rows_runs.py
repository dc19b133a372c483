"""Rows that run whole nights: kill and re-run (1), repeat a date (2), corrected input (3), late and duplicate
events (6).

"The same tables" is jobs/runtime/checksums.py's warehouse_state: order-independent
checksums of every Delta table, the gates' volume baselines and the run
reports (without timings), compared with the suite's clean reference run.
"""
from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
import signal
from pathlib import Path

from pyspark.sql import functions as F

from bench.reliability.common import Result, Suite, with_paths
from jobs.runtime import checksums, storage
from jobs.runtime.layout import Landing, Warehouse
from jobs.stages.nightly import run_nightly

log = logging.getLogger("ctr.reliability")

STAGES = ("ingest", "silver", "gold")


def duplicate_ids(spark, wh: Warehouse) -> int:
    """Ids decided twice: an impression or click id on two non-duplicate rows, a click resolved or labelled twice."""
    out = 0
    for name, key, rows in (("impressions", "impression_id", F.col("fate") != "duplicate"),
                            ("clicks", "click_id", F.col("fate") != "duplicate"),
                            ("click_resolutions", "click_id", F.lit(True)), ("labels", "impression_id", F.lit(True))):
        table = storage.read_delta(spark, wh.silver(name)).where(rows)
        out += table.count() - table.select(key).distinct().count()
    return out


def draw_kill(writes: list[tuple[str, int, str]], stage: str, rng: random.Random) -> str:
    """A kill point in ``stage``: a random write of it and a random delay (0 = just before the write;
    otherwise that many seconds into it or what follows)."""
    _, number, _ = rng.choice([w for w in writes if w[0] == stage])
    delay = rng.choice([0.0, round(rng.uniform(0.1, 3.0), 1)])
    return f"{stage}:{number}" + (f":{delay}" if delay else "")


def kill_and_rerun(suite: Suite) -> Result:
    """SIGKILL night 2 at random writes of every stage; after each, re-run it; compare with the clean run."""
    ref = suite.reference()
    day = ref.days[1]
    rng = random.Random(suite.seed)
    n = suite.options.get("kills", 20)
    same, dup_total, outcomes, missed = 0, 0, [], []
    # Stages by turns. A kill point can fall after the job has finished (a delay into the night's last write):
    # that job exited 0, nothing was killed, and the same stage is drawn again, so n kills land.
    while len(outcomes) < n and len(missed) < n:
        stage = STAGES[len(outcomes) % len(STAGES)]
        kill_at = draw_kill(ref.writes[day], stage, rng)
        cfg = suite.warehouse_after(ref.days[0], "row1")
        killed = suite.nightly_process(cfg, day, kill_at)
        if killed.returncode == 0:
            missed.append(kill_at)
            log.info(f"kill at {kill_at} came after the job had finished (exit 0): drawing another")
            continue
        if killed.returncode != -signal.SIGKILL:
            outcomes.append({"kill_at": kill_at, "error": f"exit {killed.returncode}: {killed.stderr[-500:]}"})
            continue
        run_nightly(suite.spark, cfg, day)  # the re-run
        diff = checksums.state_differences(suite.state(cfg), ref.state_after[day])
        dups = duplicate_ids(suite.spark, Warehouse(cfg.paths.warehouse))
        same += not diff and not dups
        dup_total += dups
        outcomes.append({"kill_at": kill_at, "killed": True, "differences": diff[:5], "duplicate_ids": dups})
        log.info(f"kill {len(outcomes)}/{n} at {kill_at}: "
                 f"{'same as clean' if not diff else diff[:3]}, {dups} duplicate ids")
    per_stage = {s: sum(o["kill_at"].startswith(s) for o in outcomes) for s in STAGES}
    bad = [o for o in outcomes if o.get("error") or o.get("differences") or o.get("duplicate_ids")]
    return Result(1, "", not bad and len(outcomes) == n,
                  f"{same}/{n} SIGKILLed nights re-run identical to the clean run, {dup_total} duplicate ids "
                  f"({', '.join(f'{k} {v}' for k, v in per_stage.items())}"
                  f"{f'; {len(missed)} drawn again: the job had finished first' if missed else ''})",
                  "; ".join(f"{o['kill_at']}: {o.get('error') or o.get('differences')}" for o in bad)[:400],
                  data={"kills": outcomes, "missed": missed})


def repeat_a_date(suite: Suite, times: int = 5) -> Result:
    """Night 2 run five times in a row: every run leaves the clean run's tables, row counts and checksums."""
    ref = suite.reference()
    day = ref.days[1]
    cfg = suite.warehouse_after(ref.days[0], "row2")
    runs = []
    for _ in range(times):
        run_nightly(suite.spark, cfg, day)
        state = suite.state(cfg)
        runs.append({"rows": {t: c[checksums.ROWS] for t, c in state["tables"].items()},
                     "differences": checksums.state_differences(state, ref.state_after[day])})
    same = sum(not r["differences"] for r in runs)
    rows = sum(runs[-1]["rows"].values())
    constant = all(r["rows"] == runs[0]["rows"] for r in runs)
    return Result(2, "", same == times and constant,
                  f"{same}/{times} runs identical (checksums of {len(runs[0]['rows'])} tables, {rows:,} rows, "
                  f"row counts {'constant' if constant else 'CHANGED'})",
                  "; ".join(str(r["differences"][:3]) for r in runs if r["differences"])[:400], data={"runs": runs})


def _rewrite_lines(path: Path, edit) -> int:
    """Apply ``edit(dict) -> dict | None`` (None: leave the line) to every JSON line of a landing file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    changed = 0
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        new = edit(record) if isinstance(record, dict) else None
        if new is not None:
            lines[i], changed = json.dumps(new), changed + 1
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return changed


def corrected_input(suite: Suite, corrections: int = 100) -> Result:
    """Run night 2, correct its landing files (changed values, fixed malformed lines), run it again: the
    corrected values are what bronze and silver hold, and nothing of the first delivery is left."""
    ref = suite.reference()
    day = ref.days[1]
    cfg = suite.warehouse_after(ref.days[0], "row3")
    root = Path(cfg.paths.warehouse).parent
    shutil.copytree(ref.cfg.paths.landing, root / "landing")
    cfg = with_paths(cfg, landing=str(root / "landing"))
    run_nightly(suite.spark, cfg, day)
    wh = Warehouse(cfg.paths.warehouse)
    before = storage.read_delta(suite.spark, wh.silver("impressions")).where(F.col("dt") == F.lit(day))
    quarantined_before = storage.read_delta(suite.spark, wh.bronze("quarantine")).where(F.col("dt") == F.lit(day))
    q_before = quarantined_before.count()
    # The correction: the upstream fixes the country of some impressions to a code never seen before.
    files = sorted((Path(cfg.paths.landing) / "impressions" / f"dt={day}").rglob("*.jsonl*"))
    ids: set[str] = set()

    def fix_country(record: dict) -> dict | None:
        if len(ids) >= corrections or not str(record.get("impression_id", "")).startswith("imp-"):
            return None
        ids.add(record["impression_id"])
        return {**record, "country": "ZZ"}

    fixed = sum(_rewrite_lines(p, fix_country) for p in files)
    run_nightly(suite.spark, cfg, day)
    corrected = F.col("impression_id").isin(sorted(ids))
    after = storage.read_delta(suite.spark, wh.silver("impressions")).where(F.col("dt") == F.lit(day))
    bronze = storage.read_delta(suite.spark, wh.bronze("impressions")).where(F.col("dt") == F.lit(day))
    counts = {}
    for name, df in (("bronze", bronze), ("silver", after)):
        row = df.where(corrected).agg(F.count("*").alias("n"),
                                      F.sum((F.col("country") == "ZZ").cast("int")).alias("new")).first()
        counts[name] = (row["n"], row["new"] or 0)
    same_rows = after.count() == before.count()
    q_after = storage.read_delta(suite.spark, wh.bronze("quarantine")).where(F.col("dt") == F.lit(day)).count()
    # Every row of a corrected id holds the new value (a re-delivered line counts twice, as it landed twice).
    passed = (fixed == len(ids) > 0 and same_rows and q_after == q_before
              and all(n == new >= fixed for n, new in counts.values()))
    old = sum(n - new for n, new in counts.values())
    return Result(3, "", passed,
                  f"{fixed} corrected lines: new value in {counts['bronze'][1]}/{counts['bronze'][0]} bronze and "
                  f"{counts['silver'][1]}/{counts['silver'][0]} silver rows of their ids, {old} old values left, "
                  f"row counts {'unchanged' if same_rows else 'CHANGED'}",
                  data={"fixed": fixed, "bronze": counts["bronze"], "silver": counts["silver"],
                        "quarantine": [q_before, q_after]})


def late_and_duplicate(suite: Suite, redelivered: int = 100) -> Result:
    """Per click, the fate the generator built it for (its manifest) against the fate silver gave it; then
    re-deliveries two days later are duplicates and change no other day; then a closed day re-processed."""
    ref = suite.reference()
    spark, wh = suite.spark, Warehouse(ref.cfg.paths.warehouse)
    manifest = storage.read_delta(spark, f"{Landing(ref.cfg.paths.landing).truth}/manifest").where(
        F.col("stream") == "clicks")
    expected = manifest.select(F.col("record_id").alias("click_id"),
                               F.coalesce("resolved_fate", "fate").alias("expected"))
    decided = storage.read_delta(spark, wh.silver("clicks")).where(F.col("fate") != "duplicate").select(
        "click_id", "fate", "delay_s")
    resolved = storage.read_delta(spark, wh.silver("click_resolutions")).select(
        "click_id", F.col("fate").alias("resolved"), F.col("delay_s").alias("resolved_delay"))
    got = (decided.join(resolved, "click_id", "left")
           .select("click_id", F.coalesce("resolved", "fate").alias("got"),
                   F.coalesce("resolved_delay", "delay_s").alias("delay_s")))
    # Malformed lines have no click id to follow (row 4 accounts for them); duplicates are row 6's second part.
    cmp = expected.where(~F.col("expected").isin("duplicate", "malformed")).join(got, "click_id", "full")
    by = {(r["expected"], r["got"]): r["n"]
          for r in cmp.groupBy("expected", "got").agg(F.count("*").alias("n")).collect()}
    wrong = {f"{e}->{g}": n for (e, g), n in by.items() if e != g}
    attributed = by.get(("attributed", "attributed"), 0)
    out_of_window = by.get(("out_of_window", "out_of_window"), 0)
    delays = got.groupBy("got").agg(F.min("delay_s").alias("lo"), F.max("delay_s").alias("hi"))
    delay = {r["got"]: (r["lo"], r["hi"]) for r in delays.collect()}
    late_resolved = storage.read_delta(spark, wh.silver("click_resolutions")).where(
        F.col("fate") == "attributed").count()

    # Re-deliveries: day 1's first impression and click lines again, in a file of day 3.
    days = ref.days
    cfg = suite.warehouse_after(days[1], "row6")
    root = Path(cfg.paths.warehouse).parent
    shutil.copytree(ref.cfg.paths.landing, root / "landing")
    cfg = with_paths(cfg, landing=str(root / "landing"))
    copied = {}
    for stream, key in (("impressions", "impression_id"), ("clicks", "click_id")):
        # Lines silver decided (not duplicates, not malformed): what an at-least-once re-delivery repeats.
        good = {r[0] for r in storage.read_delta(spark, wh.silver(stream)).where(
            (F.col("dt") == F.lit(days[0])) & (F.col("fate") != "duplicate")).select(key).limit(20 * redelivered)
            .collect()}
        lines = []
        for path in sorted((root / "landing" / stream / f"dt={days[0]}").rglob("*.jsonl*")):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                lines += [ln for ln in f.read().splitlines() if _id(ln, key) in good]
            if len(lines) >= redelivered:
                break
        if len(lines) < redelivered:
            raise RuntimeError(f"only {len(lines)} decided {stream} lines of {days[0]} to re-deliver")
        target = root / "landing" / stream / f"dt={days[2]}" / "hour=23" / "redelivered.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines[:redelivered]) + "\n")
        copied[stream] = len(lines[:redelivered])
    report = run_nightly(spark, cfg, days[2])
    # The reference's tables, without the columns naming landing files (this landing is a copy elsewhere).
    moved = set(checksums.LANDING_PATHS)
    want = {"tables": {t: {c: v for c, v in cols.items() if c not in moved and c != checksums.WHOLE_ROW}
                       for t, cols in ref.state_after[days[2]]["tables"].items()}}
    got_state = suite.state(cfg, moved_landing=True)
    got_state["tables"] = {t: {c: v for c, v in cols.items() if c != checksums.WHOLE_ROW}
                           for t, cols in got_state["tables"].items()}
    # Only day 3's silver impressions and clicks (the re-delivered rows, as duplicates), bronze and the
    # report may differ from the clean run.
    allowed = {"bronze/impressions", "bronze/clicks", "silver/impressions", "silver/clicks"}
    other = [d for d in checksums.differences(got_state["tables"], want["tables"]) if d.split(":")[0] not in allowed]
    ref_report = json.loads(
        (Path(ref.cfg.paths.warehouse) / "reports" / f"dt={days[2]}" / "run_report.json").read_text())
    extra_dups = {s: report[f"{s}_duplicate"] - ref_report[f"{s}_duplicate"] for s in ("impressions", "clicks")}
    dup_ok = extra_dups == copied
    # A closed day re-processed: night 2 again, after night 3: every table as it was.
    before = suite.state(cfg, moved_landing=True)["tables"]
    run_nightly(spark, cfg, days[1])
    reprocessed = checksums.differences(suite.state(cfg, moved_landing=True)["tables"], before)
    passed = not wrong and not other and dup_ok and not reprocessed and attributed > 0
    window = ref.cfg.clean.attribution_window_s
    figure = (f"{attributed:,}/{attributed + sum(n for k, n in wrong.items() if k.startswith('attributed'))} "
              f"in-window clicks attributed (delays {delay.get('attributed', (0, 0))[0]:.0f}-"
              f"{delay.get('attributed', (0, 0))[1]:.0f}s of {window}s; {late_resolved} after a late impression), "
              f"{out_of_window} out-of-window counted as such; {copied['impressions']}+{copied['clicks']} "
              f"re-deliveries 2 days later -> {extra_dups['impressions']}+{extra_dups['clicks']} duplicates, "
              f"{len(other)} other tables changed; closed day re-processed: {len(reprocessed)} tables changed")
    return Result(6, "", passed, figure, f"wrong fates {wrong}; other changes {other}; re-processing {reprocessed}"
                  if not passed else "", data={"fates": {f"{e}->{g}": n for (e, g), n in by.items()},
                                               "delays": delay, "redelivered": copied, "extra_duplicates": extra_dups})


def _id(line: str, key: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record.get(key) if isinstance(record, dict) else None
