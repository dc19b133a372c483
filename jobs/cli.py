"""Command-line plumbing shared by every job: arguments, validation, exit codes.

Everything here runs before Spark starts, so a bad date, path or config value
costs a user a second, not a cluster slot.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

from jobs.config import ConfigError, load_config
from jobs.quality import GateFailed
from jobs.rollback import UnfinishedRun
from pipelines.config import AppConfig

EXIT_OK = 0
EXIT_RUNTIME = 1     # anything unexpected: Spark failure, storage error
EXIT_USAGE = 2       # bad argument or config value, or an earlier date left unfinished; nothing was written
EXIT_GATE = 3        # a data-quality gate failed; nothing was published

log = logging.getLogger("ctr")

_SCHEMES = ("file", "s3", "s3a", "gs", "abfs", "abfss", "wasb", "wasbs", "hdfs", "dbfs", "oss", "viewfs")
_URI = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")


class UsageError(ValueError):
    """A command-line value a user must fix; raised before Spark starts."""


def parse_date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real calendar date") from None
    if not date(2000, 1, 1) <= value <= date(2099, 12, 31):
        raise argparse.ArgumentTypeError(f"{text!r} is outside the supported years 2000-2099")
    return value


def check_storage_uri(text: str, what: str) -> str:
    """Accept a local path or an object-store / HDFS URI; refuse anything odd."""
    if not text or not text.strip():
        raise UsageError(f"{what} is empty")
    if any(ord(ch) < 32 for ch in text) or any(ch in text for ch in "\"'`;|&$<>*?"):
        raise UsageError(f"{what} {text!r} contains characters not allowed in a storage path")
    match = _URI.match(text)
    path_part = text
    if match:
        if match.group("scheme").lower() not in _SCHEMES:
            raise UsageError(f"{what} {text!r}: unsupported scheme {match.group('scheme')!r} "
                             f"(use a local path or one of {', '.join(_SCHEMES)})")
        path_part = match.group("rest")
    if ".." in Path(path_part).parts or "/../" in f"/{path_part}/":
        raise UsageError(f"{what} {text!r} must not contain '..'")
    return text.rstrip("/") or "/"


def parse_spark_conf(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().startswith("spark."):
            raise UsageError(f"--conf {item!r} must look like spark.some.key=value")
        out[key.strip()] = value
    return out


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
    if args.landing:
        overrides["paths"]["landing"] = check_storage_uri(args.landing, "--landing")
    if args.warehouse:
        overrides["paths"]["warehouse"] = check_storage_uri(args.warehouse, "--warehouse")
    spark_conf = parse_spark_conf(args.conf)
    if spark_conf:
        overrides["spark"] = {"conf": spark_conf}
    if args.master:
        if not re.fullmatch(r"(local(\[(\*|\d+)(,\d+)?\])?|spark://[\w.:,-]+|yarn|k8s://\S+|mesos://\S+)",
                            args.master):
            raise UsageError(f"--master {args.master!r} is not a Spark master URL")
    cfg = load_config(args.env, args.config, overrides)
    check_storage_uri(cfg.paths.landing, "paths.landing")
    check_storage_uri(cfg.paths.warehouse, "paths.warehouse")
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
    except Exception:  # noqa: BLE001 - the scheduler needs an exit code, the user a traceback
        log.exception("run failed")
        return EXIT_RUNTIME
