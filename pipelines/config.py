"""Typed, frozen configuration handed to the transforms.

Loading and validation live in jobs/runtime/config.py; transforms only receive the
sub-config they need (for example ``CleanConfig``) as an argument.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pipelines import declarations
from pipelines.declarations import Declarations


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
    # when set, landing, warehouse and every absolute table path must lie inside it (jobs/runtime/cli.py)
    data_root: str | None = None


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
    conversion_maturity_days: int   # a day's conversion labels close this many days after it
    ua_hash_key: str | None = field(default=None, repr=False)  # a secret: never printed


@dataclass(frozen=True)
class PriorConfig:
    """How the empirical-Bayes (Beta) prior of each entity type's rates is fitted."""
    min_impressions: int      # keys with fewer impressions in the window do not inform the prior
    min_keys: int             # fewer informative keys than this: fall back to the global rate
    fallback_strength: float  # alpha + beta of the fallback prior
    max_strength: float       # cap on alpha + beta, so a near-constant rate cannot drown all evidence


@dataclass(frozen=True)
class GoldConfig:
    windows_days: tuple[int, ...]
    # the feature declarations (conf/features.yaml); jobs/runtime/config.py reads them into ``features``
    features_file: str
    prior: PriorConfig
    # a feature snapshot with at most this many keys is broadcast to the impressions it is joined to
    broadcast_max_keys: int
    # how many days before a range its dimension snapshots are searched for the one in force
    dimension_lookback_days: int
    features: Declarations | None = field(default=None, repr=False)   # read from features_file by the loader

    @property
    def entities(self) -> dict[str, tuple[str, ...]]:
        """Feature group -> the columns of its key (from labels joined with the dimension snapshots)."""
        return declarations.entities(self.features)

    @property
    def distinct_users_for(self) -> tuple[str, ...]:
        """The groups whose daily partials also carry a mergeable sketch of their distinct users."""
        return declarations.distinct_users_for(self.features)

    @property
    def same_day(self) -> dict[str, str]:
        """Feature name -> group of every declared same-day count."""
        return declarations.same_day_features(self.features)

    @property
    def sums(self) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
        """Partial column -> (input, filter, groups) of every declared sum (pipelines/features.py ``sums``)."""
        return declarations.sums(self.features)


@dataclass(frozen=True)
class TrainingSetConfig:
    train_days: int
    validation_days: int
    test_days: int
    # share of negative (unclicked) impressions kept in the train split; 1.0 keeps all
    neg_keep_rate: float
    seed: int
    # raw columns that become c_<column> (the model's vocabulary encodes them: train.min_category_count)
    categorical: tuple[str, ...]
    # a row of event day E gets the feature snapshot as of E - snapshot_lag_days (1: what a scorer had)
    snapshot_lag_days: int


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
class ScoreConfig:
    """Scoring the impressions that landed on a day, and monitoring the scores once labels close."""
    nightly: bool                   # score the night's landed impressions after gold (jobs/score.py)
    ne_tolerance: float             # a day's NE above the champion's test NE by more than this is a warning
    calibration_tolerance: float    # |predicted / observed clicks - 1| above this is a warning
    min_coverage: float             # a day with fewer of its labelled impressions scored is partial: no warnings
    monitoring_table: str           # relative = under paths.warehouse


@dataclass(frozen=True)
class MonitoringConfig:
    """The nightly watch (docs/monitoring.md): entity volumes in the metric history, drift, the night pages."""
    top_entities: int = 20          # publishers and ad categories whose volumes the history keeps, by tonight's volume
    drift_warn: float = 0.1         # PSI (numeric) or Jensen-Shannon (categorical) above this: warn
    drift_flag: float = 0.2         # ... above this: flag
    drift_sample_rows: int = 50_000    # at most this many rows of each side are binned on the driver (a hash sample)
    drift_bins: int = 10            # quantile bins of a numeric feature, from the reference
    drift_categories: int = 20      # a categorical feature's most frequent reference values; the rest are one bin
    drift_min_shift: float = 0.1    # a numeric feature whose values moved less (Wasserstein / reference sd) and whose
                                    # missing share moved less (share points) is not drift, whatever its PSI
    trend_nights: int = 30          # nights in the night page's trends


@dataclass(frozen=True)
class AppConfig:
    spark: SparkConfig
    paths: PathsConfig
    ingest: IngestConfig
    clean: CleanConfig
    generator: GeneratorConfig
    gold: GoldConfig
    training_set: TrainingSetConfig
    train: TrainConfig
    quality: QualityConfig
    score: ScoreConfig
    monitoring: MonitoringConfig = MonitoringConfig()


CALIBRATION_METHODS = ("platt", "isotonic", "none")   # train.calibration (pipelines/train/calibration.py)


@dataclass(frozen=True)
class TrainConfig:
    """Model training on any training-set table (see README "Training")."""
    table: str                      # Delta path; relative = under paths.warehouse
    truth: str                      # generator ground truth; relative = under paths.landing; optional at run time
    models: tuple[str, ...]         # of MODEL_FAMILIES
    num_workers: int
    label_col: str
    split_col: str
    group_col: str
    date_col: str
    id_col: str
    neg_keep_rate_col: str
    numeric_features: tuple[str, ...]       # explicit list; empty = every column with numeric_prefix
    categorical_features: tuple[str, ...]   # explicit list; empty = every column with categorical_prefix
    numeric_prefix: str
    categorical_prefix: str
    cross_marker: str               # names of cross-entity features contain it (ablation)
    history_pattern: str            # regex on feature names: windowed history features (contextual-only ablation)
    ablations: tuple[str, ...]      # extra XGBoost models on feature subsets (pipelines/train/features.py ABLATIONS)
    min_category_count: int         # a category seen fewer times in the train split is code 0 (unknown)
    max_categories: int             # codes per categorical column at most (the most frequent values)
    max_native_categories: int      # LightGBM splits a column natively by category up to this many codes
    ablation: bool
    num_rounds: int
    early_stopping_rounds: int
    max_depth: int
    learning_rate: float
    num_leaves: int
    min_child_weight: float
    min_child_samples: int          # LightGBM: rows a leaf needs at least (min_data_in_leaf)
    reg_lambda: float
    gbdt_lr_trees: int              # first N trees whose leaves feed GBDT+LR
    lr_reg_param: float
    lr_max_iter: int
    lgbm_time_out_minutes: int
    lgbm_max_valid_rows: int        # validation rows every LightGBM worker holds for early stopping
    eval_max_rows: int              # test rows collected for metrics (whole users sampled beyond it)
    calibration: str                # the map fitted on the validation days: platt | isotonic | none
    calibration_tolerance: float    # champion gate: |predicted/actual - 1| allowed
    first_calibration_tolerance: float   # the first model (no champion yet): |predicted/actual - 1| allowed
    registered_model: str
    experiment: str
    scores_table: str               # relative = under paths.warehouse
    seed: int
    schedule: str                   # nightly training: off, daily, weekly:<day>[,<day>] (pipelines/schedule.py)
    mlflow_ui_url: str | None       # UI serving a non-http tracking store (make mlflow-ui); for run links
