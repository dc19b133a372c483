"""Load conf/*.yaml into the frozen AppConfig, failing early with plain words.

Order of precedence, lowest first: conf/base.yaml, the --env overlay
(conf/<env>.yaml), every --config file in the order given, then command-line
values such as --landing / --warehouse.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipelines.config import (
    AppConfig,
    CleanConfig,
    GeneratorConfig,
    GeneratorRates,
    IngestConfig,
    PathsConfig,
    QualityConfig,
    SparkConfig,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"


class ConfigError(ValueError):
    """A configuration value a user must fix; raised before Spark starts."""


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        # safe_load refuses Python object tags (!!python/object ...), which is
        # what keeps a config file from running code.
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
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


def _check_value(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _check_value(value, options[0], where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
        return value
    if hint is date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{where} must be a date YYYY-MM-DD, got {value!r}") from None
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_check_value(v, str, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    raise ConfigError(f"{where}: unsupported type {hint}")  # programming error, not user input


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        key = unknown[0]
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
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"clean.bot_patterns_file: cannot read {path}: {err.strerror}") from None
    patterns = tuple(
        dict.fromkeys(line.strip().lower() for line in lines if line.strip() and not line.strip().startswith("#"))
    )
    _require(bool(patterns), f"clean.bot_patterns_file {path} holds no patterns")
    return patterns


def _validate(cfg: AppConfig) -> None:
    ing, cl, gen = cfg.ingest, cfg.clean, cfg.generator
    _require(cfg.spark.shuffle_partitions >= 1, "spark.shuffle_partitions must be at least 1")
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
    _require(cl.conversion_attribution in ("click", "viewable_impression"),
             "clean.conversion_attribution must be 'click' or 'viewable_impression', "
             f"got {cl.conversion_attribution!r}")
    _require(1 <= gen.days <= 366, "generator.days must be between 1 and 366")
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
            _require(0.0 <= value <= 0.2 or (f.name in ("unmeasured", "repeat_click", "conversion", "late_clicked_impressions") and value <= 1.0),
                     f"generator.rates.{f.name} must be between 0 and 0.2, got {value}")


def _validate_quality(q: QualityConfig) -> None:
    _require(0 < q.volume_band < 1, f"quality.volume_band must be between 0 and 1 (exclusive), got {q.volume_band}")
    _require(0 < q.rate_band < 1, f"quality.rate_band must be between 0 and 1 (exclusive), got {q.rate_band}")
    _require(1 <= q.trailing_days <= 90, "quality.trailing_days must be between 1 and 90")
    _require(1 <= q.min_trailing_days <= q.trailing_days,
             f"quality.min_trailing_days ({q.min_trailing_days}) must be between 1 and quality.trailing_days "
             f"({q.trailing_days})")


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
    raw = deep_merge(raw, overrides or {})

    clean_raw = dict(raw.get("clean") or {})
    if not isinstance(raw.get("clean"), dict):
        raise ConfigError("missing section clean")
    patterns_file = _check_value(clean_raw.pop("bot_patterns_file", None), str, "clean.bot_patterns_file")
    key_env = _check_value(clean_raw.pop("ua_hash_key_env", None), str, "clean.ua_hash_key_env")
    clean_raw["bot_patterns"] = list(read_bot_patterns(patterns_file))
    clean_raw["ua_hash_key"] = os.environ.get(key_env) or None
    raw = {**raw, "clean": clean_raw}

    sections = {f.name: f for f in dataclasses.fields(AppConfig)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r} (known: {', '.join(sections)})")
    built = {}
    for name, cls in (("spark", SparkConfig), ("paths", PathsConfig), ("ingest", IngestConfig),
                      ("clean", CleanConfig), ("generator", GeneratorConfig),
                      ("quality", QualityConfig)):
        if name not in raw:
            raise ConfigError(f"missing config section {name!r}")
        built[name] = build_dataclass(cls, raw[name], name)
    cfg = AppConfig(**built)
    _validate(cfg)
    _validate_quality(cfg.quality)
    return cfg


