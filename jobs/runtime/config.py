"""Load conf/*.yaml into the frozen AppConfig, failing early with plain words.

Order of precedence, lowest first: conf/base.yaml, the --env overlay
(conf/<env>.yaml), every --config file in the order given, then command-line
values such as --landing / --warehouse.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import reprlib
import types
import typing
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipelines import declarations
from pipelines.config import (
    CALIBRATION_METHODS,
    AppConfig,
    CleanConfig,
    GeneratorConfig,
    GeneratorRates,
    GoldConfig,
    IngestConfig,
    MonitoringConfig,
    PathsConfig,
    QualityConfig,
    ScoreConfig,
    SparkConfig,
    TrainConfig,
    TrainingSetConfig,
)
from pipelines.features import CATEGORICAL_COLUMNS, ENTITY_KEY_COLUMNS
from pipelines.schedule import parse_schedule
from pipelines.train.features import ABLATIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


class ConfigError(ValueError):
    """A configuration value a user must fix; raised before Spark starts."""


MAX_CONFIG_BYTES = 1_000_000


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        if not path.is_file():  # a directory, a FIFO or /dev/zero would fail, block or never end
            raise ConfigError(f"config file {path} is not a regular file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        # safe_load refuses Python object tags (!!python/object ...), which is
        # what keeps a config file from running code.
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        tag = re.search(r"tag:yaml.org,2002:(python/[^'\s]*)", str(err))
        if tag:
            raise ConfigError(f"{path} is refused: the tag !!{tag.group(1)} would build a Python object; "
                              "config files hold plain values only") from None
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    except ValueError as err:  # a timestamp-shaped value that is no date, such as 2025-02-30
        raise ConfigError(f"{path} holds an impossible value: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 2


def _shown(value: Any) -> str:
    """A bounded repr: YAML aliases can make a small file hold a value of billions of items."""
    return _REPR.repr(value)


def _check_value(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _check_value(value, options[0], where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {_shown(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string, got {_shown(value)}")
        return value
    if hint is date:
        if isinstance(value, date):
            return value
        try:
            if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where} must be a date YYYY-MM-DD, got {_shown(value)}") from None
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {_shown(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {_shown(value)}")
        item = typing.get_args(hint)[1]
        if item is str:  # free-form settings such as spark.conf: passed on as text
            for k, v in value.items():
                if not isinstance(v, (str, int, float)):  # bool is an int
                    raise ConfigError(f"{where}.{k} must be a single value, got {type(v).__name__}")
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return {str(k): _check_value(v, item, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    raise ConfigError(f"{where}: unsupported type {hint}")  # programming error, not user input


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        key = str(unknown[0])
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {where}.{key}{hint}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"missing setting {where}.{f.name}")
        values[f.name] = _check_value(data[f.name], hints[f.name], f"{where}.{f.name}")
    return cls(**values)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def read_bot_patterns(path_text: str) -> tuple[str, ...]:
    path = Path(path_text)
    if not path.is_absolute():
        path = REPO_ROOT / path
    try:
        if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"clean.bot_patterns_file {path} must be a regular file of at most "
                              f"{MAX_CONFIG_BYTES:,} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"clean.bot_patterns_file: cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"clean.bot_patterns_file {path} is not UTF-8 text") from None
    patterns = tuple(
        dict.fromkeys(line.strip().lower() for line in lines if line.strip() and not line.strip().startswith("#"))
    )
    _require(bool(patterns), f"clean.bot_patterns_file {path} holds no patterns")
    return patterns


def _validate(cfg: AppConfig) -> None:
    ing, cl, gen = cfg.ingest, cfg.clean, cfg.generator
    _require(cfg.spark.shuffle_partitions >= 1, "spark.shuffle_partitions must be at least 1")
    _require(bool(re.fullmatch(r"[1-9][0-9]*[kmgt]?", cfg.spark.driver_memory.lower())),
             f"spark.driver_memory must be a size such as 6g or 512m, got {cfg.spark.driver_memory!r}")
    _require(ing.max_event_lag_days >= 1, "ingest.max_event_lag_days must be at least 1")
    _require(ing.max_clock_skew_minutes >= 0, "ingest.max_clock_skew_minutes must be >= 0")
    _require(ing.max_line_bytes >= 1024, "ingest.max_line_bytes must be at least 1024")
    _require(ing.bronze_retention_days >= 1, "ingest.bronze_retention_days must be at least 1")
    _require(ing.vacuum_retain_hours >= 0, "ingest.vacuum_retain_hours must be >= 0")
    _require(cl.max_impressions_per_user_day >= 1, "clean.max_impressions_per_user_day must be at least 1")
    _require(cl.max_clicks_per_user_day >= 1, "clean.max_clicks_per_user_day must be at least 1")
    _require(cl.min_dwell_ms >= 0, "clean.min_dwell_ms must be >= 0")
    _require(cl.attribution_window_s >= 1, "clean.attribution_window_s must be at least 1")
    _require(0 <= cl.label_maturity_days <= 30, "clean.label_maturity_days must be between 0 and 30")
    _require(cl.viewable_min_ms_display >= 0 and cl.viewable_min_ms_video >= 0,
             "clean.viewable_min_ms_* must be >= 0")
    _require(cl.lookback_days >= ing.max_event_lag_days,
             f"clean.lookback_days ({cl.lookback_days}) must be at least ingest.max_event_lag_days "
             f"({ing.max_event_lag_days}), or a late re-delivery would not be recognised as a duplicate")
    _require(ing.bronze_retention_days > cl.lookback_days,
             f"ingest.bronze_retention_days ({ing.bronze_retention_days}) must exceed clean.lookback_days "
             f"({cl.lookback_days}): silver looks back into the quarantine that long")
    _require(cl.conversion_window_hours >= 1, "clean.conversion_window_hours must be at least 1")
    needed = cl.label_maturity_days + -(-cl.conversion_window_hours // 24)
    _require(needed <= cl.conversion_maturity_days <= 30,
             f"clean.conversion_maturity_days ({cl.conversion_maturity_days}) must be between {needed} "
             f"(label_maturity_days {cl.label_maturity_days} + the {cl.conversion_window_hours} h conversion window "
             f"in days, rounded up) and 30: earlier, conversions still inside the window would be left out")
    _require(cl.conversion_attribution in ("click", "viewable_impression"),
             "clean.conversion_attribution must be 'click' or 'viewable_impression', "
             f"got {cl.conversion_attribution!r}")
    _require(1 <= gen.days <= 366, "generator.days must be between 1 and 366")
    _require(date(2000, 1, 1) <= gen.start_date <= date(2099, 12, 31),
             f"generator.start_date must be in the years 2000-2099, got {gen.start_date}")
    _require(min(gen.n_ads, gen.n_campaigns, gen.n_advertisers, gen.n_publishers) >= 1,
             "generator.n_ads, n_campaigns, n_advertisers and n_publishers must each be at least 1")
    for where, seed in (("generator.seed", gen.seed), ("training_set.seed", cfg.training_set.seed),
                        ("train.seed", cfg.train.seed)):
        _require(0 <= seed < 2**31, f"{where} must be between 0 and 2147483647, got {seed}")
    _require(gen.impressions_per_day >= 1000, "generator.impressions_per_day must be at least 1000")
    _require(0 < gen.base_ctr < 0.5, "generator.base_ctr must be between 0 and 0.5")
    _require(10 <= gen.max_user_impressions_per_day * 4 <= cl.max_impressions_per_user_day,
             "generator.max_user_impressions_per_day must be at least 3 and at most a quarter of "
             "clean.max_impressions_per_user_day, so natural users are never behavioural bots")
    _require(gen.files_per_hour >= 1, "generator.files_per_hour must be at least 1")
    for name in gen.gzip_streams:
        _require(name in ("impressions", "clicks", "conversions", "dims"),
                 f"generator.gzip_streams: unknown stream {name!r}")
    for f in dataclasses.fields(GeneratorRates):
        value = getattr(gen.rates, f.name)
        if f.name == "sivt_users":
            _require(0 <= value <= 1000, "generator.rates.sivt_users must be between 0 and 1000")
        else:
            whole_range = f.name in ("unmeasured", "repeat_click", "conversion", "late_clicked_impressions")
            _require(0.0 <= value <= 0.2 or (whole_range and value <= 1.0),
                     f"generator.rates.{f.name} must be between 0 and 0.2, got {value}")


IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
# Settings that moved into the feature declarations: a clear pointer instead of "unknown setting".
MOVED_TO_DECLARATIONS = {("gold", "entities"): "feature groups (groups.<name>.keys)",
                         ("gold", "distinct_users_for"): "a distinct_count of user_id in the group",
                         ("training_set", "stats"): "the group's aggregations",
                         ("training_set", "same_day"): "a same_day_count in the group"}


def read_declarations(raw: dict[str, Any]) -> declarations.Declarations:
    """Read gold.features_file (relative paths: under the repository) against gold.windows_days."""
    for (section, key), now in MOVED_TO_DECLARATIONS.items():
        _require(key not in (raw.get(section) or {}),
                 f"{section}.{key} is no longer a setting: declare it in the feature declarations "
                 f"(gold.features_file, conf/features.yaml) as {now}; docs/features.md shows the format")
    gold = raw.get("gold")
    _require(isinstance(gold, dict), "missing config section 'gold'" if gold is None else
             f"config section gold must be a mapping, got {_shown(gold)}")
    file_text = _check_value(gold.get("features_file"), str, "gold.features_file")
    windows = _check_value(gold.get("windows_days"), tuple[int, ...], "gold.windows_days")
    _require(bool(windows) and all(1 <= w <= 366 for w in windows) and len(set(windows)) == len(windows),
             f"gold.windows_days must be distinct whole numbers of days between 1 and 366, got {list(windows)}")
    path = Path(file_text)
    if not path.is_absolute():
        path = REPO_ROOT / path
    _require(path.exists(), f"gold.features_file {path} does not exist")
    if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"gold.features_file {path} must be a regular file of at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        return declarations.read(path, windows, ENTITY_KEY_COLUMNS)
    except declarations.DeclarationError as err:
        raise ConfigError(str(err)) from None


def _validate_gold(cfg: AppConfig) -> None:
    gold, ts = cfg.gold, cfg.training_set
    p = gold.prior
    _require(p.min_impressions >= 1 and p.min_keys >= 2, "gold.prior.min_impressions must be >= 1 and "
                                                         "gold.prior.min_keys >= 2")
    _require(0 < p.fallback_strength <= p.max_strength, "gold.prior.fallback_strength must be > 0 and at most "
                                                        "gold.prior.max_strength")
    _require(gold.broadcast_max_keys >= 0, "gold.broadcast_max_keys must be >= 0")
    _require(1 <= gold.dimension_lookback_days <= 366, "gold.dimension_lookback_days must be between 1 and 366")
    _require(ts.train_days >= 1 and ts.validation_days >= 1 and ts.test_days >= 1,
             "training_set.train_days, validation_days and test_days must each be at least 1")
    _require(0 < ts.neg_keep_rate <= 1, f"training_set.neg_keep_rate must be in (0, 1], got {ts.neg_keep_rate}")
    _require(0 <= ts.snapshot_lag_days <= 7, f"training_set.snapshot_lag_days must be 0 .. 7, got "
                                              f"{ts.snapshot_lag_days}")
    for col in ts.categorical:
        _require(col in CATEGORICAL_COLUMNS, f"training_set.categorical: unknown column {col!r} "
                                             f"(choose from {', '.join(CATEGORICAL_COLUMNS)})")


MODEL_FAMILIES = ("xgboost", "lightgbm", "gbdt_lr", "lr")
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _validate_train(tr: TrainConfig) -> None:
    _require(bool(tr.models), "train.models must name at least one model family")
    for name in tr.models:
        _require(name in MODEL_FAMILIES,
                 f"train.models: unknown family {name!r} (choose from {', '.join(MODEL_FAMILIES)})")
    _require(len(set(tr.models)) == len(tr.models), "train.models lists a family twice")
    _require("gbdt_lr" not in tr.models or "xgboost" in tr.models,
             "train.models: gbdt_lr uses the leaves of the xgboost model, so xgboost must be listed too")
    _require(1 <= tr.num_workers <= 1024, "train.num_workers must be between 1 and 1024")
    _require(1 <= tr.num_rounds <= 100000, "train.num_rounds must be between 1 and 100000")
    _require(1 <= tr.early_stopping_rounds <= tr.num_rounds,
             "train.early_stopping_rounds must be at least 1 and at most train.num_rounds")
    _require(1 <= tr.max_depth <= 16, "train.max_depth must be between 1 and 16")
    _require(0.0 < tr.learning_rate <= 1.0, "train.learning_rate must be in (0, 1]")
    _require(2 <= tr.num_leaves <= 131072, "train.num_leaves must be between 2 and 131072")
    _require(tr.min_child_weight >= 0 and tr.reg_lambda >= 0 and tr.lr_reg_param >= 0,
             "train.min_child_weight, train.reg_lambda and train.lr_reg_param must be >= 0")
    _require(1 <= tr.gbdt_lr_trees <= tr.num_rounds, "train.gbdt_lr_trees must be between 1 and train.num_rounds")
    _require(tr.lr_max_iter >= 1, "train.lr_max_iter must be at least 1")
    _require(1 <= tr.lgbm_time_out_minutes <= 1440, "train.lgbm_time_out_minutes must be between 1 and 1440")
    _require(tr.lgbm_max_valid_rows >= 100 and tr.eval_max_rows >= 100,
             "train.lgbm_max_valid_rows and train.eval_max_rows must be at least 100")
    _require(tr.calibration in CALIBRATION_METHODS,
             f"train.calibration must be one of {', '.join(CALIBRATION_METHODS)}, got {tr.calibration!r}")
    _require(0.0 < tr.calibration_tolerance < 1.0, "train.calibration_tolerance must be in (0, 1)")
    _require(tr.calibration_tolerance <= tr.first_calibration_tolerance < 1.0,
             "train.first_calibration_tolerance must be in [train.calibration_tolerance, 1)")
    names = [tr.label_col, tr.split_col, tr.group_col, tr.date_col, tr.id_col, tr.neg_keep_rate_col]
    # Column names reach Spark SQL text (score.py's replaceWhere on date_col): identifiers only.
    for name in (*names, *tr.numeric_features, *tr.categorical_features):
        _require(bool(COLUMN_NAME.fullmatch(name)), f"train: column name {name!r} must be a plain identifier "
                                                    "(letters, digits and _)")
    for name in (tr.numeric_prefix, tr.categorical_prefix, tr.cross_marker):
        _require(bool(re.fullmatch(r"[A-Za-z0-9_]+", name)),
                 f"train: prefix or marker {name!r} must hold only letters, digits and _")
    _require(len(set(names)) == len(names),
             "train: label, split, group, date, id and neg_keep_rate columns must differ")
    overlap = set(tr.numeric_features) & set(tr.categorical_features)
    _require(not overlap, f"train: {sorted(overlap)[:1]} is listed as both numeric and categorical")
    _require(not set(tr.numeric_features + tr.categorical_features) & set(names),
             "train: a feature list names the label, split, group, date, id or neg_keep_rate column")
    _require(tr.numeric_prefix != tr.categorical_prefix,
             "train.numeric_prefix and train.categorical_prefix must differ")
    _require(tr.min_category_count >= 1, "train.min_category_count must be at least 1")
    for name in tr.ablations:
        _require(name in ABLATIONS, f"train.ablations: unknown ablation {name!r} (choose from {', '.join(ABLATIONS)})")
    _require(1 <= tr.max_categories <= 10_000_000, "train.max_categories must be between 1 and 10000000")
    _require(0 <= tr.max_native_categories <= 10_000_000,
             "train.max_native_categories must be between 0 and 10000000")
    _require(1 <= tr.min_child_samples <= 10_000_000, "train.min_child_samples must be between 1 and 10000000")
    try:
        re.compile(tr.history_pattern)
    except re.error as err:
        raise ConfigError(f"train.history_pattern is not a regular expression: {err}") from None
    try:
        parse_schedule(tr.schedule)
    except ValueError as err:
        raise ConfigError(f"train.schedule: {err}") from None
    _require(tr.mlflow_ui_url is None or bool(re.match(r"^https?://[^\s/]+", tr.mlflow_ui_url)),
             f"train.mlflow_ui_url must be an http(s) URL or null, got {tr.mlflow_ui_url!r}")


def _schedule_from_yaml(raw: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 reads an unquoted ``schedule: off`` as false: take it at its word."""
    train = raw.get("train")
    if not isinstance(train, dict) or not isinstance(train.get("schedule"), bool):
        return raw
    if train["schedule"]:
        raise ConfigError("train.schedule reads as true (an unquoted on, yes or true) and is not a schedule: "
                          "use off, daily or weekly:<day> (e.g. weekly:sun)")
    return {**raw, "train": {**train, "schedule": "off"}}
def _validate_quality(q: QualityConfig) -> None:
    _require(0 < q.volume_band < 1, f"quality.volume_band must be between 0 and 1 (exclusive), got {q.volume_band}")
    _require(0 < q.rate_band < 1, f"quality.rate_band must be between 0 and 1 (exclusive), got {q.rate_band}")
    _require(1 <= q.trailing_days <= 90, "quality.trailing_days must be between 1 and 90")
    _require(1 <= q.min_trailing_days <= q.trailing_days,
             f"quality.min_trailing_days ({q.min_trailing_days}) must be between 1 and quality.trailing_days "
             f"({q.trailing_days})")


def _validate_monitoring(m: MonitoringConfig) -> None:
    _require(1 <= m.top_entities <= 1000, f"monitoring.top_entities must be between 1 and 1000, got {m.top_entities}")
    _require(0 < m.drift_warn < m.drift_flag, f"monitoring.drift_warn ({m.drift_warn}) must be > 0 and below "
                                              f"monitoring.drift_flag ({m.drift_flag})")
    _require(m.drift_sample_rows >= 1000, f"monitoring.drift_sample_rows must be at least 1000, got "
                                          f"{m.drift_sample_rows}")
    _require(2 <= m.drift_bins <= 100, f"monitoring.drift_bins must be between 2 and 100, got {m.drift_bins}")
    _require(1 <= m.drift_categories <= 1000, f"monitoring.drift_categories must be between 1 and 1000, got "
                                              f"{m.drift_categories}")
    _require(0 < m.drift_min_shift <= 10, f"monitoring.drift_min_shift must be above 0 and at most 10, got "
                                          f"{m.drift_min_shift}")
    _require(1 <= m.trend_nights <= 366, f"monitoring.trend_nights must be between 1 and 366, got {m.trend_nights}")


def load_config(
    env: str | None = None,
    extra_files: typing.Sequence[str] = (),
    overrides: dict[str, Any] | None = None,
) -> AppConfig:
    """Build the AppConfig from conf/base.yaml, an env overlay, extra files and overrides."""
    raw = load_yaml(CONF_DIR / "base.yaml")
    if env:
        overlay = CONF_DIR / f"{env}.yaml"
        if not overlay.is_file():
            choices = sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "base")
            raise ConfigError(f"unknown environment {env!r}: no {overlay} (choose from {', '.join(choices)})")
        raw = deep_merge(raw, load_yaml(overlay))
    for name in extra_files:
        raw = deep_merge(raw, load_yaml(Path(name)))
    raw = _schedule_from_yaml(deep_merge(raw, overrides or {}))

    clean_raw = dict(raw.get("clean") or {})
    if not isinstance(raw.get("clean"), dict):
        raise ConfigError("missing section clean")
    patterns_file = _check_value(clean_raw.pop("bot_patterns_file", None), str, "clean.bot_patterns_file")
    key_env = _check_value(clean_raw.pop("ua_hash_key_env", None), str, "clean.ua_hash_key_env")
    clean_raw["bot_patterns"] = list(read_bot_patterns(patterns_file))
    clean_raw["ua_hash_key"] = os.environ.get(key_env) or None
    raw = {**raw, "clean": clean_raw}

    features = read_declarations(raw)
    _require("features" not in raw["gold"], "unknown setting gold.features (the declarations file is "
                                            "gold.features_file)")

    sections = {f.name: f for f in dataclasses.fields(AppConfig)}
    unknown = sorted(set(raw) - set(sections), key=str)
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r} (known: {', '.join(sections)})")
    built = {}
    for name, cls in (("spark", SparkConfig), ("paths", PathsConfig), ("ingest", IngestConfig),
                      ("clean", CleanConfig), ("generator", GeneratorConfig), ("gold", GoldConfig),
                      ("training_set", TrainingSetConfig), ("train", TrainConfig), ("quality", QualityConfig),
                      ("score", ScoreConfig), ("monitoring", MonitoringConfig)):
        if name not in raw and name == "monitoring":
            continue   # optional: its defaults
        if name not in raw:
            raise ConfigError(f"missing config section {name!r}")
        built[name] = build_dataclass(cls, raw[name], name)
    built["gold"] = dataclasses.replace(built["gold"], features=features)
    cfg = AppConfig(**built)
    _validate(cfg)
    _validate_gold(cfg)
    _validate_train(cfg.train)
    _validate_quality(cfg.quality)
    _validate_monitoring(cfg.monitoring)
    sc = cfg.score
    _require(sc.ne_tolerance > 0 and sc.calibration_tolerance > 0,
             "score.ne_tolerance and score.calibration_tolerance must be > 0")
    _require(0 < sc.min_coverage <= 1, f"score.min_coverage must be in (0, 1], got {sc.min_coverage}")
    return cfg


