"""The project file ``tsops.yaml``: validated with pydantic, errors name the key and the problem."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tsops.datamodel import SeriesSpec

PROJECT_FILE = "tsops.yaml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ConfigError(ValueError):
    """The project file is missing or invalid; the message names each key and its problem."""


def parse_duration(text: str | int | float) -> timedelta:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"2w"``, ``"45s"`` (or a number of seconds) -> timedelta."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration such as 90d, 12h, 30m, 2w or 45s")
    try:
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


#: the lake zones a retention policy covers, in the order they are pruned
RETENTION_ZONES = ("raw", "quarantine", "clean", "forecasts")
#: the explicit "never delete" retention value
FOREVER = "forever"
#: the longest retention accepted (longer is a typo: use ``forever``)
MAX_RETENTION = timedelta(days=100 * 365 + 25)
MAX_RETENTION_TEXT = "100 years"


def retention_duration(text: str | None) -> timedelta | None:
    """A retention value -> how long to keep data (None = forever).

    Accepts a duration in (0, 100 years] such as ``90d``, or ``forever`` (``None`` is forever too). ``0d``,
    negative or absurdly long durations raise ValueError: a retention of 0 would delete everything and
    ``1000000w`` cannot be subtracted from a date.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == FOREVER):
        return None
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"{text!r} is not a retention: give a duration such as 90d, or {FOREVER}")
    d = parse_duration(text)
    if d <= timedelta(0):
        raise ValueError(f"{text!r} would delete everything: a retention must be longer than 0 "
                         f"(write {FOREVER} to keep data for ever)")
    if d > MAX_RETENTION:
        raise ValueError(f"{text!r} is longer than {MAX_RETENTION_TEXT}: write {FOREVER} to keep data for ever")
    return d


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LakeConfig(_Strict):
    root: str = Field(default="lake", description="local path (relative to the project) or s3:// hdfs:// URL")
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


class CatalogConfig(_Strict):
    url: str = Field(default="sqlite:///catalog.db", description="SQLAlchemy URL")


class TrackingConfig(_Strict):
    uri: str = Field(default="sqlite:///mlflow.db", description="MLflow tracking URI")
    artifacts: str = Field(default="mlartifacts", description="artifact root (path or URL)")


class KafkaSourceConfig(_Strict):
    kind: Literal["kafka"]
    bootstrap_servers: str
    topic: str
    group_id: str = "tsops"
    format: Literal["envelope", "json"] = "envelope"
    batch_size: int = Field(default=20_000, gt=0)
    poll_timeout_s: float = Field(default=1.0, gt=0)
    idle_timeout_s: float = Field(
        default=10.0, gt=0,
        description="stop when nothing arrives for this long (keep it above session.timeout.ms)",
    )
    consumer: dict[str, Any] = Field(default_factory=dict, description="extra librdkafka consumer settings")
    on_gap: Literal["fail", "skip"] = Field(
        default="fail",
        description="when records between the committed position and the first available one are gone "
        "(retention, a truncated table, a replaced file): fail the run, or skip them (recorded in the audit)",
    )


class SqlSourceConfig(_Strict):
    kind: Literal["sql"]
    url: str = Field(description="SQLAlchemy URL, e.g. mysql+pymysql://user@host/db")
    table: str = Field(description="table or view to poll")
    timestamp_column: str
    id_column: str | None = Field(default=None, description="strictly increasing id (timestamp+incrementing)")
    batch_size: int = Field(default=10_000, gt=0)
    delay_s: float = Field(
        default=0.0, ge=0, description="only read rows older than now - delay (rows still being written)"
    )
    timezone: str = Field(default="UTC", description="time zone of naive DATETIME values")
    epoch_unit: Literal["s", "ms", "us", "ns"] = Field(default="ms", description="unit of integer timestamps")
    poll_interval_s: float = Field(default=5.0, gt=0, description="pause between polls with --follow")
    to: Literal["lake", "kafka"] = Field(
        default="lake", description="lake: ingest directly; kafka: publish Connect envelopes to kafka_topic"
    )
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str | None = None
    kafka_key_columns: list[str] | None = None
    on_gap: Literal["fail", "skip"] = Field(
        default="fail",
        description="when records between the committed position and the first available one are gone "
        "(retention, a truncated table, a replaced file): fail the run, or skip them (recorded in the audit)",
    )

    @model_validator(mode="after")
    def _kafka_target(self) -> SqlSourceConfig:
        if self.to == "kafka" and not (self.kafka_bootstrap_servers and self.kafka_topic):
            raise ValueError("to: kafka needs kafka_bootstrap_servers and kafka_topic")
        return self


class FileSourceConfig(_Strict):
    kind: Literal["files"]
    paths: list[str] = Field(min_length=1, description="globs, relative to the project directory")
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    preset: Literal["air_quality_uci", "beijing_multisite", "sales_weekly"] | None = None
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    rename: dict[str, str] = Field(default_factory=dict, description="source column -> dataset column")
    envelope: bool = Field(default=True, description="jsonl lines are Kafka Connect envelopes")
    batch_rows: int = Field(default=100_000, gt=0)
    on_gap: Literal["fail", "skip"] = Field(
        default="fail",
        description="when records between the committed position and the first available one are gone "
        "(retention, a truncated table, a replaced file): fail the run, or skip them (recorded in the audit)",
    )


SourceConfig = Annotated[
    KafkaSourceConfig | SqlSourceConfig | FileSourceConfig, Field(discriminator="kind")
]


class CleaningSettings(_Strict):
    """A dataset's ``cleaning:`` section: what ``tsops process`` does to its series.

    Every key is optional; an unset key keeps the default of :class:`tsops.quality.CleaningConfig` (the one
    place the defaults live). The allowed values are checked here, so a typo fails at load, naming the key.
    """

    dedup: Literal["last", "first", "mean", "flag"] | None = Field(
        default=None, description="same timestamp, different values: keep last/first, average, or flag (NaN)")
    impute: Literal["linear", "spline", "seasonal", "locf", "ema", "none", "auto"] | None = Field(
        default=None, description="gap filling; auto = best of a masked backtest per series (recorded)")
    anomaly_methods: list[Literal["decomposition", "bounds", "stuck", "iqr", "iqr_diff", "residual"]] | None = Field(
        default=None, description="rules that flag readings (default: decomposition, bounds, stuck)")
    treatment: Literal["faults", "none", "drop", "clip", "minmax", "ema", "interpolate"] | None = Field(
        default=None, description="faults (default): replace spikes / implausible / stuck readings only, keep "
        "episodes and level shifts; or apply one method to every flagged reading")
    fault_treatment: Literal["none", "drop", "clip", "minmax", "ema", "interpolate"] | None = None
    bounds: tuple[float | None, float | None] | None = Field(
        default=None, description="physical range [low, high] (null = open): readings outside are implausible")
    anomaly_z: float | None = Field(default=None, gt=0, description="flag residuals beyond this many robust sds")
    shift_z: float | None = Field(default=None, ge=0, description="level-shift threshold in robust sds (0 = off)")
    stuck_min_run: int | None = Field(default=None, ge=-1, description="identical readings that make a stuck run")
    iqr_k: float | None = Field(default=None, gt=0)
    iqr_diff_k: float | None = Field(default=None, gt=0)
    residual_z: float | None = Field(default=None, gt=0)
    max_fill: int | None = Field(default=None, ge=0, description="at most this many rows inserted per gap")
    min_period_confidence: float | None = Field(default=None, ge=0, le=1)
    period: str | None = Field(default=None, description="force the sampling period (e.g. 10m) instead of estimating it")
    future_tolerance: str | None = Field(
        default=None, description="rows later than now + this wait in raw until their time comes (default 5m)")

    @field_validator("period", "future_tolerance")
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v).total_seconds() < 0:
            raise ValueError(f"{v!r} must not be negative")
        return v

    def to_cleaning_kwargs(self) -> dict[str, Any]:
        """The keys set in the file, as :class:`tsops.quality.CleaningConfig` arguments."""
        out = self.model_dump(exclude_none=True)
        for k in ("period", "future_tolerance"):
            if k in out:
                out[k] = f"{parse_duration(out[k]).total_seconds()}s"
        if "anomaly_methods" in out:
            out["anomaly_methods"] = tuple(out["anomaly_methods"])
        if "bounds" in out:
            out["bounds"] = tuple(out["bounds"])
        return out


def _retention_text(v: Any) -> str:
    """Validate one retention value and return its canonical text (a duration or ``forever``)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        v = f"{v}s"  # a bare number is seconds, as in parse_duration
    return FOREVER if retention_duration(v) is None else str(v).strip()


class RetentionPolicy(_Strict):
    """How long each lake zone of a dataset keeps its day partitions (``forever``: never deleted)."""

    raw: str = Field(default=FOREVER, description="ingested observations")
    quarantine: str = Field(default=FOREVER, description="rejected records with their reasons")
    clean: str = Field(default=FOREVER, description="cleaned series (the quality stage's output)")
    forecasts: str = Field(default=FOREVER, description="forecasts written by `tsops forecast` / the pipeline")

    @field_validator("raw", "quarantine", "clean", "forecasts", mode="before")
    @classmethod
    def _zone(cls, v: Any) -> str:
        return _retention_text(FOREVER if v is None else v)

    def keep(self, zone: str) -> timedelta | None:
        """How long ``zone`` keeps data (None: forever)."""
        return retention_duration(getattr(self, zone))

    def zones(self) -> dict[str, str]:
        """The zones with a bounded policy: zone -> duration text (the others are kept for ever)."""
        return {z: getattr(self, z) for z in RETENTION_ZONES if getattr(self, z) != FOREVER}


class ForecastConfig(_Strict):
    """Defaults of ``tsops train``/``tune``/``forecast`` for one dataset (a command-line flag wins; an unset
    key falls back to the ``pipeline:`` section or the built-in default)."""

    horizon: int | None = Field(default=None, gt=0, description="forecast steps (default: pipeline.horizon)")
    season: int | None = Field(
        default=None, ge=1,
        description="season in samples for every series (1 = none); default: each series' profile from `tsops process`",
    )
    windows: int = Field(default=3, gt=0, description="rolling-origin backtest windows")
    metric: Literal["rmse", "mae", "mape", "smape", "mase"] = Field(
        default="mase", description="backtest metric to minimise")


class DatasetConfig(_Strict):
    series: SeriesSpec
    source: SourceConfig | None = None
    cleaning: CleaningSettings = Field(default_factory=CleaningSettings)
    retention: RetentionPolicy = Field(
        default_factory=RetentionPolicy,
        description="per zone ({raw: 90d, quarantine: 30d, clean: 180d, forecasts: 30d}; an absent zone is kept "
        "for ever), or one duration for every zone (e.g. 90d), or forever",
    )
    quarantine_retention: str | None = Field(
        default=None, description="shorthand for retention.quarantine (with a scalar retention)"
    )
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, dict):
            return v
        text = _retention_text(v)  # one value for every zone: errors name `retention`, not each zone
        return dict.fromkeys(RETENTION_ZONES, text)

    @field_validator("quarantine_retention", mode="before")
    @classmethod
    def _quarantine(cls, v: Any) -> str | None:
        return None if v is None else _retention_text(v)

    @model_validator(mode="before")
    @classmethod
    def _quarantine_once(cls, data: Any) -> Any:
        if (isinstance(data, dict) and data.get("quarantine_retention") is not None
                and isinstance(data.get("retention"), dict) and "quarantine" in data["retention"]):
            raise ValueError("give the quarantine policy once: retention.quarantine or quarantine_retention")
        return data

    @model_validator(mode="after")
    def _apply_quarantine(self) -> DatasetConfig:
        if self.quarantine_retention is not None:
            self.retention = self.retention.model_copy(update={"quarantine": self.quarantine_retention})
        return self


class PipelineConfig(_Strict):
    """When and how ``tsops pipeline run`` (and the Airflow DAG rendered from it) runs."""

    schedule: str = Field(default="@daily", description="cron expression, @hourly/@daily/..., or none")
    retries: int = Field(default=2, ge=0)
    retry_delay: str = "5m"
    retrain_every: str = Field(default="7d", description="retrain the champion at least this often")
    drift_threshold: float = Field(
        default=1.5, gt=1.0,
        description="retrain when recent forecast error exceeds this multiple of the champion's backtest error",
    )
    horizon: int = Field(default=24, gt=0, description="forecast steps")
    tune_trials: int = Field(default=6, gt=0, description="Ray Tune trials when retraining")
    tune_minutes: float = Field(default=5.0, gt=0)
    families: list[str] | None = Field(
        default=None, description="model families to search (default: seasonal_naive, auto_theta, lstm, nhits)"
    )
    max_steps: int = Field(default=300, gt=0, description="training steps of neural models per fit")
    max_points: int | None = Field(default=2000, gt=0, description="train on each series' last N grid points")
    covariates: int | list[str] | None = Field(
        default=None,
        description="other series as inputs of neural models: K chosen from the analysis stage's lagged "
        "correlations, or explicit series ids",
    )

    @field_validator("retry_delay", "retrain_every")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class ProjectConfig(_Strict):
    name: str = "tsops"
    lake: LakeConfig = Field(default_factory=LakeConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    engine: Literal["local", "spark"] = "local"
    workers: int | None = Field(default=None, gt=0, description="local process pool size (default: cores)")
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @field_validator("datasets")
    @classmethod
    def _names(cls, v: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", name):
                raise ValueError(f"dataset name {name!r} must be letters, digits, _ . - (no slashes)")
        return v


class Project:
    """A loaded project: its directory and validated configuration, with resolved locations."""

    def __init__(self, root: Path, config: ProjectConfig):
        self.root = Path(root).resolve()
        self.config = config

    # --- resolved locations -------------------------------------------------------------------------
    @property
    def lake_root(self) -> str:
        r = self.config.lake.root
        return r if "://" in r else str((self.root / r).resolve())

    @property
    def catalog_url(self) -> str:
        return _resolve_sqlite(self.config.catalog.url, self.root)

    @property
    def tracking_uri(self) -> str:
        return _resolve_sqlite(self.config.tracking.uri, self.root)

    @property
    def artifacts_uri(self) -> str:
        a = self.config.tracking.artifacts
        return a if "://" in a else (self.root / a).resolve().as_uri()

    def dataset(self, name: str) -> DatasetConfig:
        try:
            return self.config.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.config.datasets)) or "none"
            raise ConfigError(f"dataset {name!r} is not defined in {self.root / PROJECT_FILE} (defined: {known})") from None

    def lake(self):
        from tsops.lake import Lake

        return Lake(self.lake_root, compression=self.config.lake.compression)

    def catalog(self):
        from tsops.catalog import Catalog

        return Catalog(self.catalog_url)


def _resolve_sqlite(url: str, root: Path) -> str:
    """Make ``sqlite:///relative.db`` relative to the project directory (absolute URLs are kept)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((root / url[len(prefix):]).resolve())
    return url


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in {"kafka", "sql", "files"}))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = PROJECT_FILE) -> ProjectConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of keys to values, not {type(data).__name__}")
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def find_project(start: Path | str | None = None) -> Path:
    """The directory holding tsops.yaml: ``start`` (or $TSOPS_PROJECT, or the cwd) or one of its parents."""
    d = Path(start or os.environ.get("TSOPS_PROJECT") or Path.cwd()).resolve()
    for p in [d, *d.parents]:
        if (p / PROJECT_FILE).is_file():
            return p
    raise ConfigError(f"no {PROJECT_FILE} in {d} or its parents: run `tsops init {d}` first")


def load_project(path: Path | str | None = None) -> Project:
    """Load ``tsops.yaml`` from ``path`` (a directory or the file itself)."""
    p = Path(path) if path is not None else find_project()
    if p.is_dir():
        p = p / PROJECT_FILE
    if not p.is_file():
        raise ConfigError(f"{p} does not exist: run `tsops init {p.parent}` to create a project")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p} is not valid YAML: {err}") from None
    return Project(p.parent, parse_config(data, str(p)))


TEMPLATE = """\
# tsops project file. Paths are relative to this file's directory.
name: {name}

lake:
  # Local directory (default) or a URL pyarrow understands: s3://bucket/prefix, hdfs://namenode/path
  root: lake
  compression: zstd            # zstd | snappy | gzip | none

catalog:
  # SQLAlchemy URL. SQLite file in the project by default; PostgreSQL in production, e.g.
  # postgresql+psycopg://tsops@db-host/tsops
  url: sqlite:///catalog.db

tracking:
  # MLflow tracking URI and artifact root
  uri: sqlite:///mlflow.db
  artifacts: mlartifacts

engine: local                  # local (process pool) | spark

pipeline:                      # `tsops pipeline run` and the Airflow DAG (`tsops airflow render`)
  schedule: "@daily"           # cron, @hourly, @daily ... or none
  retries: 2
  retrain_every: 7d            # retrain at least this often, and when forecast error drifts
  drift_threshold: 1.5         # ... past 1.5x the champion's backtest error
  horizon: 24

datasets:
  # Sensor readings from Kafka in Kafka Connect JSON envelopes (schema + payload)
  sensors:
    series:
      timestamp: event_time    # Connect Timestamp (epoch ms)
      keys: [position, type_name]
      values: [input_data]
    source:
      kind: files              # files | kafka | sql
      format: jsonl            # JSON Lines of envelopes, as `tsops produce --to files` writes them
      paths: ["incoming/sensors/*.jsonl"]
      # kind: kafka
      # bootstrap_servers: localhost:9092
      # topic: sensors
      # group_id: tsops-sensors
      # kind: sql               # poll a table or view like Kafka Connect's JDBC source
      # url: mysql+pymysql://user@localhost/building
      # table: SENSOR_DATA_VIEW
      # timestamp_column: event_time
      # id_column: id
    # Retention: day partitions older than this are deleted, per lake zone (a zone left out is kept for
    # ever; `forever` says so explicitly). Each value is a duration > 0 and at most 100 years (s m h d w).
    # A single value applies to every zone (`retention: 90d`); `quarantine_retention: 30d` overrides the
    # quarantine zone of a single value. `tsops retention` and the pipeline's last stage apply it.
    retention:
      raw: 90d                 # ingested observations (catalog counts follow)
      quarantine: 30d          # rejected records
      clean: 180d              # cleaned series
      forecasts: 30d           # issued forecasts
    # cleaning:                # what `tsops process` does (every key optional; defaults shown)
    #   dedup: last            # last | first | mean | flag
    #   impute: linear         # linear | spline | seasonal | locf | ema | none | auto (best per series)
    #   max_fill: 10000        # longest gap (in samples) that is filled; longer ones stay open, counted
    #   future_tolerance: 5m   # rows later than now + this wait in raw, processed when their time comes
    #   treatment: faults      # replace sensor faults only; episodes and level shifts are flagged and kept
    #   bounds: [0, null]      # physical range: readings outside are implausible (faults)
    # forecast:                # defaults of `tsops train/tune/forecast` for this dataset (flags win)
    #   horizon: 144           # steps ahead (default: pipeline.horizon)
    #   season: null           # samples per season for every series (1 = none); null = each series' profile
    #   windows: 3             # rolling-origin backtest windows
    #   metric: mase           # rmse | mae | mape | smape | mase

  # The UCI air quality set (semicolon separated, decimal comma, -200 = missing)
  # air:
  #   series: {{timestamp: ts, keys: [site], values: ["CO(GT)", "NO2(GT)", T, RH]}}
  #   source: {{kind: files, preset: air_quality_uci, paths: ["data/AirQualityUCI.csv"]}}
"""


def init_project(directory: Path | str, name: str | None = None, overwrite: bool = False) -> Path:
    """Write a commented ``tsops.yaml`` into ``directory`` (created if needed) and return its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = d / PROJECT_FILE
    if p.exists() and not overwrite:
        raise ConfigError(f"{p} already exists (pass --force to overwrite)")
    text = TEMPLATE.format(name=name or d.resolve().name or "tsops")
    parse_config(yaml.safe_load(text), str(p))  # the template must always be valid
    p.write_text(text, encoding="utf-8")
    return p
