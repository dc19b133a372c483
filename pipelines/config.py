"""Typed, frozen configuration handed to the transforms.

Loading and validation live in jobs/config.py; transforms only receive the
sub-config they need (for example ``CleanConfig``) as an argument.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class SparkConfig:
    app_name: str
    master: str
    driver_memory: str
    shuffle_partitions: int
    delta_package: str
    jars_dir: str
    ivy_dir: str
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PathsConfig:
    landing: str
    warehouse: str


@dataclass(frozen=True)
class IngestConfig:
    max_event_lag_days: int
    max_clock_skew_minutes: int
    max_line_bytes: int
    bronze_retention_days: int
    vacuum_retain_hours: int


@dataclass(frozen=True)
class CleanConfig:
    bot_patterns: tuple[str, ...]
    max_impressions_per_user_day: int
    max_clicks_per_user_day: int
    min_dwell_ms: int
    attribution_window_s: int
    label_maturity_days: int
    viewable_min_ms_display: int
    viewable_min_ms_video: int
    lookback_days: int
    conversion_window_hours: int
    conversion_attribution: str
    ua_hash_key: str | None = field(default=None, repr=False)  # a secret: never printed


@dataclass(frozen=True)
class GeneratorRates:
    malformed: float
    duplicate: float
    late: float
    late_clicked_impressions: float
    givt_impressions: float
    sivt_users: int
    invalid_dwell: float
    click_before_impression: float
    out_of_window: float
    repeat_click: float
    bot_ua_click: float
    orphan_click: float
    unmeasured: float
    viewability_edge: float
    conversion: float


@dataclass(frozen=True)
class GeneratorConfig:
    start_date: date
    days: int
    impressions_per_day: int
    seed: int
    n_ads: int
    n_campaigns: int
    n_advertisers: int
    n_publishers: int
    base_ctr: float
    max_user_impressions_per_day: int
    gzip_streams: tuple[str, ...]
    files_per_hour: int
    rates: GeneratorRates


@dataclass(frozen=True)
class QualityConfig:
    volume_band: float
    rate_band: float
    trailing_days: int
    min_trailing_days: int
    results_dir: str | None = None
    local_results_dir: str = "data/_quality"


@dataclass(frozen=True)
class AppConfig:
    spark: SparkConfig
    paths: PathsConfig
    ingest: IngestConfig
    clean: CleanConfig
    generator: GeneratorConfig
    quality: QualityConfig
