"""Row 10's hostile invocations: (kind, entry point, argv), built from a few lists of bad values.

Each list holds one kind of bad input; each value is tried on every entry point
that takes that option, so one bad date becomes a case per job that reads
``--date``. Every path points into ``<root>/row10/sandbox``; the YAML files and
the FIFO live beside it in ``configs/``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GOOD_DATE = "2025-03-02"
SQL = ("'; DROP TABLE silver.labels; --", "x\"; DELETE FROM bronze WHERE 1=1; --", "`x` UNION SELECT * FROM secrets;")

BAD_DATES = (
    "2025-02-30", "2025-13-01", "2025-00-10", "2025-04-31", "2023-02-29", "20250301", "2025/03/01", "01-03-2025",
    "2025-3-1", "1970-01-01", "1999-12-31", "2100-01-01", "9999-12-31", "0000-01-01", "", " 2025-03-01",
    "2025-03-01 ", "2025-03-01\n", "2025-03-01T00:00", "2025-W09-6",
    "\uff12\uff10\uff12\uff15-\uff10\uff13-\uff10\uff11",
    "\u0662\u0660\u0662\u0665-\u0660\u0663-\u0660\u0661", "2025-03-01; DROP TABLE x", "today", "-1",
    "2025-03-01' OR '1'='1",
)
BAD_PATHS = (
    "../elsewhere", "data/../../etc", "/tmp/../etc", "..", "a/b/..", "s3a://bucket/../other", "file:///tmp/../etc",
    "data/x\ny", "data/x\ty", "data/x\x1b[31m", "data/\u202eevil", "data/x\x7f", "data/x\u00a0y",
    "data/x;rm -rf /", "data/$(id)", "data/`id`", "data/x|cat", "data/x&&id", "data/x>out", "data/*", "data/x?",
    "data/{a,b}", "data/[ab]", "data/x\\y", "~/data", "data/x#frag", "data/x%2e%2e", "data/(x)", "data/x!",
    "ftp://host/x", "http://evil.example/x", "jdbc:mysql://h/db", "javascript:alert(1)", "file:relative",
    "file://etc/passwd", "s3a://", "s3a:///x", "gs://", "abfss://", "c:/windows", "s3a:bucket/x", "", "   ",
    "a" * 5000,
)
BAD_MASTERS = (
    "", "garbage", "local[0]", "local[-1]", "local[abc]", "local[*", "local[99999]", "LOCAL", "local[2] ",
    "spark://", "spark://host:port", "spark://h:7077; rm -rf /", "yarn-client", "mesos://h:5050", "k8s://",
    "k8s://$(id)", "http://evil.example", "local[2]\n",
)
BAD_CONFS = (
    "nokey", "spark.x", "=1", "foo.bar=1", "hadoop.fs.defaultFS=file:///", "spark.=1", "spark.x y=1", "SPARK.x=1",
    "spark.sql.session.timeZone=America/New_York", "spark.x=a\nb", "spark.x'; DROP TABLE t; --=1",
    "DROP TABLE t=1", "spark.master\n=local",
)
BAD_ENVS = ("../tests/conf/tiny", "../../etc/passwd", "/etc/passwd", "local/../cluster", "", "LOCAL", "nosuch")
BAD_RANGES = (
    ("--start", "2025-03-02", "--end", "2025-03-01"), ("--start", "2099-12-31", "--end", "2000-01-01"),
    ("--start", "2000-01-01", "--end", "2099-12-31"), ("--start", "2025-01-01", "--end", "2035-12-31"),
    ("--start", "2025-03-01", "--days", "0"), ("--start", "2025-03-01", "--days", "-1"),
    ("--start", "2025-03-01", "--days", "3661"), ("--start", "2025-03-01", "--days", "99999"),
    ("--start", "2025-03-01", "--days", "\uff13"), ("--start", "2025-03-01", "--days", "1e3"),
    ("--start", "2025-03-01", "--days", " 3"), ("--start", "2025-03-01", "--days", "3.0"),
    ("--start", "2025-03-01", "--days", "\u00b2"), ("--date", "2025-03-01", "--start", "2025-03-01"),
    ("--date", "2025-03-01", "--end", "2025-03-02"), ("--date", "2025-03-01", "--days", "3"),
    ("--start", "2025-03-01"), ("--end", "2025-03-01"), (), ("--start", "2025-03-01", "--end", "2025-02-30"),
    ("--start", "2025-03-01", "--end", "2025-03-02; rm -rf /"), ("--start", "2025-03-01", "--bogus", "1"),
)
GENERATOR_NUMBERS = (
    ("--days", "0"), ("--days", "367"), ("--days", "\uff13"), ("--days", "-1"), ("--days", " 3"),
    ("--impressions-per-day", "999"), ("--impressions-per-day", "1e6"), ("--impressions-per-day", "1_000_000"),
    ("--seed", "-1"), ("--seed", str(2**31)), ("--seed", SQL[0]),
)


def yaml_texts(sandbox: Path) -> dict[str, str]:
    """Config files a job must refuse: name -> text. The tags would create ``sandbox/pwned`` if they ran."""
    touch = f"['touch {sandbox}/pwned']"
    # Nine levels of nine aliases: 387 million strings if anything expanded them (str() of a value did).
    laughs = "[&a [x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"&{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]" for a, b in zip("abcdefgh", "bcdefghi")) + "]"
    bomb_conf = "{" + ", ".join(f"spark.{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]"
                                for a, b in zip("abcdefgh", "bcdefghi")) + "}"
    bomb_conf = bomb_conf.replace("{", "{spark.a: &a [x, x, x, x, x, x, x, x, x], ", 1)
    return {
        "tag_object_apply": f"spark: !!python/object/apply:os.system {touch}\n",
        "tag_object_new": f"spark: !!python/object/new:os.system {touch}\n",
        "tag_name": "spark: !!python/name:os.system\n",
        "tag_module": "spark: !!python/module:os\n",
        "tag_object": "spark: !!python/object:collections.OrderedDict {}\n",
        "tag_tuple": "train:\n  models: !!python/tuple [xgboost]\n",
        "tag_nested": f"train:\n  models: [!!python/object/apply:subprocess.check_output [[touch, {sandbox}/pwned]]]\n",
        "tag_document": f"--- !!python/object/apply:os.system {touch}\n",
        "tag_verbatim": f"spark: !<tag:yaml.org,2002:python/object/apply:os.system> {touch}\n",
        "tag_directive": f"%TAG !p! tag:yaml.org,2002:python/\n---\nspark: !p!object/apply:os.system {touch}\n",
        "unknown_section": "nightly:\n  x: 1\n",
        "unknown_key": "clean:\n  min_dwel_ms: 5\n",
        "unknown_path_key": "paths:\n  warehose: x\n",
        "mixed_key_types": "clean:\n  1: 2\n  a: 3\n",
        "type_word_for_int": "clean:\n  min_dwell_ms: fast\n",
        "type_string_int": "spark:\n  shuffle_partitions: '8'\n",
        "type_bool_for_int": "ingest:\n  bronze_retention_days: true\n",
        "type_string_for_list": "train:\n  models: xgboost\n",
        "type_mapping_for_list": "gold:\n  windows_days: {a: 1}\n",
        "type_int_path": "paths:\n  landing: 5\n",
        "type_list_path": "paths:\n  warehouse: [a, b]\n",
        "type_null_path": "paths:\n  warehouse: null\n",
        "type_schedule_on": "train:\n  schedule: on\n",
        "type_conf_list": "spark:\n  conf:\n    spark.x: [1, 2]\n",
        "type_conf_null": "spark:\n  conf:\n    spark.x: null\n",
        "type_binary": "train:\n  experiment: !!binary aGVsbG8=\n",
        "neg_lag": "ingest:\n  max_event_lag_days: -1\n",
        "neg_partitions": "spark:\n  shuffle_partitions: -8\n",
        "neg_dwell": "clean:\n  min_dwell_ms: -1\n",
        "neg_window": "clean:\n  attribution_window_s: -1800\n",
        "neg_windows_days": "gold:\n  windows_days: [-7]\n",
        "neg_rounds": "train:\n  num_rounds: -1\n",
        "neg_learning_rate": "train:\n  learning_rate: -0.1\n",
        "neg_band": "quality:\n  volume_band: -0.5\n",
        "neg_keep_rate": "training_set:\n  neg_keep_rate: -1\n",
        "neg_n_ads": "generator:\n  n_ads: -5\n",
        "neg_seed": "generator:\n  seed: -1\n",
        "neg_train_seed": "train:\n  seed: -42\n",
        "neg_line_bytes": "ingest:\n  max_line_bytes: -1\n",
        "neg_vacuum": "ingest:\n  vacuum_retain_hours: -1\n",
        "nan_learning_rate": "train:\n  learning_rate: .nan\n",
        "inf_band": "quality:\n  volume_band: .inf\n",
        "nan_ctr": "generator:\n  base_ctr: .nan\n",
        "duplicate_key_negative": "clean:\n  min_dwell_ms: 1000\n  min_dwell_ms: -5\n",
        "driver_memory_word": "spark:\n  driver_memory: lots\n",
        "master_garbage": "spark:\n  master: garbage\n",
        "conf_timezone": "spark:\n  conf:\n    spark.sql.session.timeZone: America/New_York\n",
        "conf_not_spark": "spark:\n  conf:\n    not.spark.key: x\n",
        "date_impossible": "generator:\n  start_date: 2025-02-30\n",
        "date_basic_format": "generator:\n  start_date: '20250301'\n",
        "date_epoch": "generator:\n  start_date: 1970-01-01\n",
        "sql_date_col": "train:\n  date_col: \"event_date = event_date OR 1=1 --\"\n",
        "sql_label_col": "train:\n  label_col: \"label; DROP TABLE x\"\n",
        "sql_feature": "train:\n  numeric_features: [\"f_x) OR (1=1\"]\n",
        "sql_attribution": "clean:\n  conversion_attribution: \"'; DROP TABLE x; --\"\n",
        "sql_schedule": "train:\n  schedule: \"weekly:sun; DROP TABLE x\"\n",
        "url_javascript": "train:\n  mlflow_ui_url: \"javascript:alert(1)\"\n",
        "path_warehouse_up": "paths:\n  warehouse: ../../etc\n",
        "path_landing_no_bucket": "paths:\n  landing: \"s3a://\"\n",
        "path_scores_up": "train:\n  scores_table: ../../../tmp/x\n",
        "path_results_up": "quality:\n  results_dir: /tmp/../etc\n",
        "path_table_ftp": "train:\n  table: ftp://x/y\n",
        "path_data_root_up": "paths:\n  data_root: ../x\n",
        "path_bot_patterns_dir": "clean:\n  bot_patterns_file: /etc\n",
        "not_mapping_list": "- just\n- a list\n",
        "not_mapping_scalar": "hello\n",
        "syntax_unclosed": "spark: [unclosed\n",
        "syntax_tab": "spark:\n\tmaster: local\n",
        "syntax_two_documents": "spark: {}\n---\nclean: {}\n",
        "billion_laughs_conf": f"spark:\n  conf: {bomb_conf}\n",
        "billion_laughs_models": f"train:\n  models: {laughs}\n",
        "billion_laughs_shown": f"train:\n  numeric_features: {laughs}\n  models: [*i]\n",
        "billion_laughs_date": f"train:\n  numeric_features: {laughs}\ngenerator:\n  start_date: *i\n",
        "deep_nesting": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "huge_file": "# " + "x" * 2_000_000 + "\n",
    }


@dataclass(frozen=True)
class Case:
    kind: str
    entry: str
    argv: tuple[str, ...]
    label: str


def write_fixtures(base: Path) -> dict:
    """The sandbox every path points into, and the config files the cases name."""
    sandbox = base / "sandbox"
    root, outside, cwd, configs = sandbox / "root", sandbox / "outside", sandbox / "cwd", base / "configs"
    for folder in (root, outside, cwd, configs):
        folder.mkdir(parents=True)
    (root / "escape").symlink_to(outside, target_is_directory=True)  # inside data_root by name only
    yaml = {}
    for name, text in yaml_texts(sandbox).items():
        yaml[name] = configs / f"{name}.yaml"
        yaml[name].write_text(text, encoding="utf-8")
    (configs / "not_utf8.yaml").write_bytes(b"spark:\n  master: \xff\xfe\n")
    yaml["not_utf8"] = configs / "not_utf8.yaml"
    os.mkfifo(configs / "fifo.yaml")
    data_root, data_root_uri = configs / "data_root.yaml", configs / "data_root_uri.yaml"
    data_root.write_text(f"paths:\n  data_root: {root}\n")
    data_root_uri.write_text("paths:\n  data_root: s3a://lake/ctr\n")
    return {"sandbox_root": sandbox, "root": root, "outside": outside, "cwd": cwd, "configs": configs,
            "landing": root / "landing", "warehouse": root / "warehouse", "yaml": yaml, "fifo": configs / "fifo.yaml",
            "data_root_yaml": data_root, "data_root_uri_yaml": data_root_uri}


# YAML cases that set paths.landing / paths.warehouse: run without the option that overrides it
YAML_PATHS = {"type_int_path": "--landing", "path_landing_no_bucket": "--landing", "type_list_path": "--warehouse",
              "type_null_path": "--warehouse", "path_warehouse_up": "--warehouse"}
DATED = ("nightly", "ingest", "silver", "gold", "score", "restore")
UNDATED = ("training_set", "train", "generate_logs")


def base_argv(entry: str, fx: dict) -> tuple[str, ...]:
    where = ("--landing", str(fx["landing"]), "--warehouse", str(fx["warehouse"]))
    if entry == "dates":
        return ("--date", GOOD_DATE)
    return (("--date", GOOD_DATE) if entry in DATED else ()) + where


def with_option(argv: tuple[str, ...], option: str, value: str) -> tuple[str, ...]:
    """``argv`` with ``option``'s value replaced, or the pair appended."""
    if option in argv:
        i = argv.index(option)
        return argv[:i + 1] + (value,) + argv[i + 2:]
    return argv + (option, value)


def hostile_cases(fx: dict) -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, entry: str, argv: tuple[str, ...], label: str) -> None:
        cases.append(Case(kind, entry, argv, label))

    for value in BAD_DATES:
        for entry in ("nightly", "gold", "ingest", "silver", "score", "restore", "dates"):
            add("dates", entry, with_option(base_argv(entry, fx), "--date", value), f"--date {value!r}")
        add("dates", "training_set", with_option(base_argv("training_set", fx), "--end", value), f"--end {value!r}")
        add("dates", "generate_logs", with_option(base_argv("generate_logs", fx), "--start", value),
            f"--start {value!r}")
    for argv in BAD_RANGES:
        add("ranges", "dates", argv, " ".join(argv) or "(no dates)")
    for option, value in GENERATOR_NUMBERS:
        add("ranges", "generate_logs", with_option(base_argv("generate_logs", fx), option, value),
            f"{option} {value!r}")
    for value in BAD_PATHS:
        for entry, option in (("nightly", "--landing"), ("nightly", "--warehouse"), ("gold", "--warehouse"),
                              ("train", "--table"), ("score", "--out")):
            add("paths", entry, with_option(base_argv(entry, fx), option, value), f"{option} {value[:40]!r}")
    same = str(fx["root"] / "same")
    add("paths", "nightly", with_option(with_option(base_argv("nightly", fx), "--landing", same), "--warehouse", same),
        "landing == warehouse")
    add("paths", "nightly", with_option(base_argv("nightly", fx), "--warehouse", str(fx["landing"] / "wh")),
        "warehouse inside landing")
    add("paths", "generate_logs", with_option(base_argv("generate_logs", fx), "--landing", str(fx["warehouse"])),
        "landing == warehouse")
    cases += data_root_cases(fx)
    for sql in SQL:
        for entry, option in (("nightly", "--date"), ("nightly", "--landing"), ("nightly", "--warehouse"),
                              ("nightly", "--env"), ("nightly", "--config"), ("nightly", "--master"),
                              ("nightly", "--conf"), ("nightly", "--log-level"), ("train", "--table"),
                              ("train", "--truth"), ("score", "--table"), ("score", "--out"), ("training_set", "--end"),
                              ("generate_logs", "--start"), ("dates", "--start"), ("dates", "--end")):
            argv = base_argv(entry, fx) if entry != "dates" else ("--start", GOOD_DATE)
            add("sql", entry, with_option(argv, option, sql), f"{option} {sql!r}")
    for value in BAD_MASTERS:
        for entry in ("nightly", "train"):
            add("master", entry, with_option(base_argv(entry, fx), "--master", value), f"--master {value!r}")
    for value in BAD_CONFS:
        for entry in ("nightly", "training_set"):
            add("conf", entry, base_argv(entry, fx) + ("--conf", value), f"--conf {value!r}")
    for value in BAD_ENVS:
        for entry in ("nightly", "gold"):
            add("env", entry, with_option(base_argv(entry, fx), "--env", value), f"--env {value!r}")
    for name, path in fx["yaml"].items():
        argv = base_argv("nightly", fx)
        if name in YAML_PATHS:  # the command line would override the file's bad value
            i = argv.index(YAML_PATHS[name])
            argv = argv[:i] + argv[i + 2:]
        add("yaml", "nightly", argv + ("--config", str(path)), name)
    for name in ("tag_object_apply", "tag_name", "sql_date_col", "neg_rounds", "billion_laughs_conf", "deep_nesting"):
        for entry in ("train", "score", "training_set"):
            add("yaml", entry, base_argv(entry, fx) + ("--config", str(fx["yaml"][name])), name)
    for path in (fx["configs"], fx["configs"] / "missing.yaml", Path("/dev/null/x.yaml")):
        add("yaml", "nightly", base_argv("nightly", fx) + ("--config", str(path)), f"--config {path.name}")
    return cases


def data_root_cases(fx: dict) -> list[Case]:
    """Paths outside a configured paths.data_root: local (symlink and prefix tricks included) and URI roots."""
    root, local, uri = fx["root"], ("--config", str(fx["data_root_yaml"])), ("--config", str(fx["data_root_uri_yaml"]))
    out = []
    for option, value in (("--warehouse", "/tmp/ctr-outside"), ("--warehouse", "/etc/ctr"), ("--warehouse", "/"),
                          ("--warehouse", f"{root}-evil/warehouse"), ("--warehouse", str(root / "escape" / "wh")),
                          ("--warehouse", str(fx["outside"])), ("--landing", "/var/tmp/landing"),
                          ("--landing", str(root.parent)), ("--warehouse", "file:///etc/ctr"),
                          ("--warehouse", "s3a://lake/ctr/warehouse"), ("--warehouse", "relative/warehouse")):
        out.append(Case("data_root", "nightly", with_option(base_argv("nightly", fx), option, value) + local,
                        f"local root, {option} {value}"))
    for entry, option, value in (("train", "--table", "/etc/ctr"), ("train", "--truth", str(fx["outside"])),
                                 ("score", "--out", "/tmp/ctr-scores"), ("score", "--table", f"{root}-evil/t")):
        out.append(Case("data_root", entry, with_option(base_argv(entry, fx), option, value) + local,
                        f"local root, {option} {value}"))
    for text, label in (("train:\n  scores_table: /tmp/ctr-scores\n", "train.scores_table"),
                        (f"quality:\n  results_dir: {fx['outside']}\n", "quality.results_dir"),
                        ("train:\n  table: s3a://other/t\n", "train.table")):
        path = fx["configs"] / f"data_root_{label}.yaml"
        path.write_text(text)
        out.append(Case("data_root", "nightly", base_argv("nightly", fx) + local + ("--config", str(path)),
                        f"local root, {label} outside"))
    inside = ("--landing", "s3a://lake/ctr/landing", "--warehouse", "s3a://lake/ctr/warehouse")
    for option, value in (("--warehouse", "s3a://lake/ctr-evil/warehouse"), ("--warehouse", "s3a://other/ctr/wh"),
                          ("--warehouse", "gs://lake/ctr/warehouse"), ("--warehouse", "s3a://lake/other"),
                          ("--warehouse", "s3a://lake"), ("--landing", str(root / "landing")),
                          ("--landing", "s3a://lake/ctrl/landing")):
        out.append(Case("data_root", "nightly", with_option(("--date", GOOD_DATE) + inside, option, value) + uri,
                        f"s3a://lake/ctr root, {option} {value}"))
    return out


def valid_controls(fx: dict) -> list[Case]:
    """Invocations that must get past validation: without them, refusing everything would pass."""
    inside = ("--landing", "s3a://lake/ctr/landing", "--warehouse", "s3a://lake/ctr/warehouse")
    return [
        Case("control", "nightly", base_argv("nightly", fx), "plain night"),
        Case("control", "nightly", base_argv("nightly", fx) + ("--config", str(fx["data_root_yaml"]),
                                                               "--master", "local[2]", "--conf", "spark.x=1"),
             "inside a local data_root"),
        Case("control", "train", ("--config", str(fx["data_root_uri_yaml"])) + inside, "inside an s3a data_root"),
        Case("control", "gold", base_argv("gold", fx) + ("--env", "cluster"), "--env cluster"),
        Case("control", "dates", ("--start", "2025-03-01", "--days", "3"), "a 3-day range"),
    ]
