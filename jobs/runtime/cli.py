"""Command-line plumbing shared by every job: arguments, validation, exit codes.

Everything here runs before Spark starts, so a bad date, path or config value
costs a user a second, not a cluster slot.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs.runtime.config import ConfigError, load_config
from jobs.runtime.quality import GateFailed
from jobs.runtime.rollback import UnfinishedRun
from pipelines.config import AppConfig

EXIT_OK = 0
EXIT_RUNTIME = 1     # anything unexpected: Spark failure, storage error
EXIT_USAGE = 2       # bad argument or config value, or an earlier date left unfinished; nothing was written
EXIT_GATE = 3        # a data-quality gate failed; nothing was published

log = logging.getLogger("ctr")

_SCHEMES = ("file", "s3", "s3a", "gs", "abfs", "abfss", "wasb", "wasbs", "hdfs", "dbfs", "oss", "viewfs")
_NEEDS_BUCKET = ("s3", "s3a", "gs", "abfs", "abfss", "wasb", "wasbs", "oss")
_URI = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")
# Shell and Hadoop glob metacharacters: the landing root becomes part of a glob pattern,
# and paths reach make and shell scripts unquoted.
_PATH_FORBIDDEN = "\"'`;|&$<>*?[]{}()!#%\\"
_MAX_PATH = 2048
_MASTER = re.compile(r"local(\[(\*|[1-9]\d{0,3})(,[1-9]\d{0,3})?\])?|spark://[\w.-]+(:\d{1,5})?(,[\w.-]+(:\d{1,5})?)*"
                     r"|yarn|k8s://(https?://)?[\w.-]+(:\d{1,5})?/?")
_CONF_KEY = re.compile(r"spark\.[A-Za-z0-9_.\-/]+")
# Set by jobs/runtime/spark.py and relied on: event days are UTC days.
_PINNED_CONF = ("spark.sql.session.timeZone",)
# Path-valued options some jobs add (train.py, score.py): validated here, with the others.
_JOB_PATH_OPTIONS = ("table", "truth", "out")
MAX_DAYS = 3660   # a longer range of nights is surely a typo


class UsageError(ValueError):
    """A command-line value a user must fix; raised before Spark starts."""


def parse_date(text: str) -> date:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text or ""):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real calendar date") from None
    if not date(2000, 1, 1) <= value <= date(2099, 12, 31):
        raise argparse.ArgumentTypeError(f"{text!r} is outside the supported years 2000-2099")
    return value


# the words a range error uses: make backfill's variables (jobs/dates.py), or the nightly job's flags
MAKE_NAMES = {"date": "DATE", "start": "START", "end": "END", "days": "--days"}
FLAG_NAMES = {"date": "--date", "start": "--start", "end": "--end", "days": "--days"}


def day_range(start: date, end: date, names: dict[str, str] = MAKE_NAMES) -> list[date]:
    """Every day from ``start`` to ``end``, both included; ValueError for a reversed or implausibly long range."""
    if end < start:
        raise ValueError(f"{names['end']} {end} is before {names['start']} {start}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"a range of more than {MAX_DAYS} days is surely a typo")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def chosen_days(day: date | None, start: date | None, end: date | None, days: str | None = None,
                names: dict[str, str] = MAKE_NAMES) -> list[date]:
    """The nights one run covers: ``day`` alone, or ``start`` .. ``end`` (or ``days`` long); ValueError
    naming what to give when the combination is wrong, in ``names``' words (make's variables or the job's flags)."""
    n = names
    if day and (start or end or days):
        raise ValueError(f"give {n['date']}, or {n['start']} and {n['end']}, not both")
    if day:
        return [day]
    if not start:
        raise ValueError(f"give {n['date']}=YYYY-MM-DD, or {n['start']}=YYYY-MM-DD and {n['end']}=YYYY-MM-DD")
    if days and end:
        raise ValueError(f"give {n['end']} or {n['days']}, not both")
    if days:
        if not re.fullmatch(r"[0-9]{1,5}", days) or not 1 <= int(days) <= MAX_DAYS:
            raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}")
        end = start + timedelta(days=int(days) - 1)
    elif not end:
        raise ValueError(f"{n['start']} needs {n['end']} (or {n['days']})")
    return day_range(start, end, names)


def check_storage_uri(text: str, what: str) -> str:
    """Accept a local path or an object-store / HDFS URI; refuse anything odd."""
    if not text or not text.strip():
        raise UsageError(f"{what} is empty")
    if len(text) > _MAX_PATH:
        raise UsageError(f"{what} is {len(text)} characters long (at most {_MAX_PATH})")
    if not text.isprintable() or any(ch in text for ch in _PATH_FORBIDDEN):
        raise UsageError(f"{what} {text!r} contains characters not allowed in a storage path")
    match = _URI.match(text)
    path_part = text
    if match:
        scheme = match.group("scheme").lower()
        if scheme not in _SCHEMES:
            raise UsageError(f"{what} {text!r}: unsupported scheme {match.group('scheme')!r} "
                             f"(use a local path or one of {', '.join(_SCHEMES)})")
        path_part = match.group("rest")
        if scheme in _NEEDS_BUCKET and not path_part.split("/")[0]:
            raise UsageError(f"{what} {text!r} names no bucket or container")
        if scheme == "file" and not path_part.startswith("/"):
            raise UsageError(f"{what} {text!r}: a file:// URI needs an absolute path (file:///...)")
    elif ":" in text:  # Hadoop reads "x:..." as a URI scheme, so a colon in a local path is a typo
        raise UsageError(f"{what} {text!r}: a local path must not contain ':' (URIs look like s3a://bucket/path)")
    elif text.startswith("~"):
        raise UsageError(f"{what} {text!r}: '~' is not expanded here; give the full path")
    if ".." in Path(path_part).parts or "/../" in f"/{path_part}/":
        raise UsageError(f"{what} {text!r} must not contain '..'")
    return text.rstrip("/") or "/"


def _local(uri: str) -> Path | None:
    """The resolved local path of a plain path or file:// URI; None for any other URI."""
    match = _URI.match(uri)
    if match and match.group("scheme").lower() != "file":
        return None
    return Path(match.group("rest") if match else uri).resolve()


def is_inside(uri: str, root: str) -> bool:
    """Whether ``uri`` is ``root`` or under it: local paths after resolving symlinks, URIs by scheme,
    bucket and path prefix (check_storage_uri has refused '..')."""
    local, local_root = _local(uri), _local(root)
    if local is not None or local_root is not None:
        return local is not None and local_root is not None and local.is_relative_to(local_root)
    scheme, rest = _URI.match(uri).groups()
    root_scheme, root_rest = _URI.match(root).groups()
    return scheme.lower() == root_scheme.lower() and f"{rest.rstrip('/')}/".startswith(f"{root_rest.rstrip('/')}/")


def check_paths(cfg: AppConfig, args: argparse.Namespace) -> None:
    """Every path a job reads or writes: well formed, landing and warehouse apart, and inside
    paths.data_root when that is set."""
    named = {"landing": "--landing" if args.landing is not None else "paths.landing",
             "warehouse": "--warehouse" if args.warehouse is not None else "paths.warehouse"}
    landing = check_storage_uri(cfg.paths.landing, named["landing"])
    warehouse = check_storage_uri(cfg.paths.warehouse, named["warehouse"])
    if is_inside(landing, warehouse) or is_inside(warehouse, landing):
        raise UsageError(f"{named['landing']} {landing!r} and {named['warehouse']} {warehouse!r} must not be "
                         "the same folder or one inside the other")
    # Relative table paths are under the warehouse or landing, so '..' is all that could lead them out;
    # quality.results_dir and the jobs' path options are taken as given (relative to the working folder).
    checked = {named["landing"]: landing, named["warehouse"]: warehouse}
    under_roots = {"train.table": cfg.train.table, "train.truth": cfg.train.truth,
                   "train.scores_table": cfg.train.scores_table, "score.monitoring_table": cfg.score.monitoring_table}
    as_given = {"quality.results_dir": cfg.quality.results_dir,
                **{f"--{o}": getattr(args, o, None) for o in _JOB_PATH_OPTIONS}}
    for what, value in {**under_roots, **as_given}.items():
        if value is not None:
            value = check_storage_uri(value, what)
            if what in as_given or _URI.match(value) or value.startswith("/"):
                checked[what] = value
    if cfg.paths.data_root is None:
        return
    root = check_storage_uri(cfg.paths.data_root, "paths.data_root")
    for what, value in checked.items():
        if not is_inside(value, root):
            raise UsageError(f"{what} {value!r} is outside paths.data_root {root!r}")


def parse_spark_conf(items: Sequence[str], what: str = "--conf") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _CONF_KEY.fullmatch(key):
            raise UsageError(f"{what} {item!r} must look like spark.some.key=value")
        if not value.isprintable():
            raise UsageError(f"{what} {item!r}: the value contains control characters")
        if key in _PINNED_CONF:
            raise UsageError(f"{what} {item!r}: {key} is fixed by jobs/runtime/spark.py (event days are UTC days)")
        out[key] = value
    return out


def check_master(master: str, what: str) -> None:
    if not _MASTER.fullmatch(master):
        raise UsageError(f"{what} {master!r} is not a Spark master URL (local[N], spark://host:port, yarn, k8s://...)")


def base_parser(description: str, *, needs_date: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 done, 1 runtime failure, 2 bad argument or config, 3 quality gate failed.",
    )
    if needs_date:
        parser.add_argument("--date", type=parse_date, required=True, help="arrival date to process, YYYY-MM-DD")
    parser.add_argument("--landing", help="root of the landing layout (local path or URI); default: paths.landing")
    parser.add_argument("--warehouse", help="root for tables, reports and quality results; default: paths.warehouse")
    parser.add_argument("--env", default="local", help="config overlay conf/<env>.yaml (default: local)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="extra YAML config merged on top (repeatable)")
    parser.add_argument("--master", help="Spark master URL (local[*], spark://host:7077, yarn, k8s://...); "
                                         "default: the one spark-submit gives, else spark.master in config")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Spark setting, as with spark-submit (repeatable)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def resolve(args: argparse.Namespace) -> AppConfig:
    """Turn parsed arguments into a validated config; raise UsageError/ConfigError."""
    overrides: dict[str, Any] = {"paths": {}}
    # "is not None": an empty --warehouse "$UNSET_VARIABLE" must not mean the default warehouse
    if args.landing is not None:
        overrides["paths"]["landing"] = check_storage_uri(args.landing, "--landing")
    if args.warehouse is not None:
        overrides["paths"]["warehouse"] = check_storage_uri(args.warehouse, "--warehouse")
    spark_conf = parse_spark_conf(args.conf)
    if spark_conf:
        overrides["spark"] = {"conf": spark_conf}
    if args.master is not None:
        check_master(args.master, "--master")
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", args.env or ""):
        raise UsageError(f"--env {args.env!r} must name an overlay in conf/, such as local or cluster")
    cfg = load_config(args.env, args.config, overrides)
    check_master(cfg.spark.master, "spark.master")
    for key, value in cfg.spark.conf.items():
        parse_spark_conf([f"{key}={value}"], "spark.conf")
    check_paths(cfg, args)
    return cfg


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "pyspark", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace, AppConfig], int],
             argv: Sequence[str] | None = None) -> int:
    """Parse, validate, then run ``body``; map failures to exit codes."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) and EXIT_USAGE
    setup_logging(args.log_level)
    try:
        cfg = resolve(args)
    except (UsageError, ConfigError) as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return body(args, cfg)
    except (UsageError, ConfigError, UnfinishedRun) as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except GateFailed as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_GATE
    except Exception:
        log.exception("run failed")
        return EXIT_RUNTIME
