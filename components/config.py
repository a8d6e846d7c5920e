"""Typed settings loaded once from ``params.yaml``.

Every knob lives in ``params.yaml``; this module turns it into frozen pydantic
objects so a missing key or a wrong type fails at start-up with the dotted key
in the message, not deep inside a training step. The candidate specs of
``train.candidates`` are in ``components.training.candidate_settings``, which
this module imports (never the other way round); both build on
``components.settings_base``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from components.settings_base import ConfigError, KeyedError, Section
from components.training.candidate_settings import FAMILIES, Candidate, check_search
from components.vocabulary import ALL_PRIMARY_METRICS


class DataSettings(Section):
    source: str = Field(description="'sklearn:breast_cancer' or a path to a CSV/Parquet file")
    path: str = Field(description="where ingest writes the dataset (tracked by DVC)")
    target: str
    test_size: float = Field(gt=0, lt=1)
    val_size: float = Field(gt=0, lt=1)
    seed: int


class ValidateSettings(Section):
    contract: str | None = None
    min_rows: int = Field(ge=1)
    max_null_fraction: float = Field(ge=0, le=1)


class ParallelSettings(Section):
    """Where candidate fits and search trials run; never changes results, only wall time."""

    engine: Literal["local", "dask"] = "local"
    address: str | None = Field(default=None, min_length=1, description="scheduler of an existing Dask cluster")
    n_workers: int = Field(default=2, ge=1, description="LocalCluster workers when address is null")


class SearchSettings(Section):
    """Hyper-parameter search for candidates that declare a ``search`` space (0 trials = off)."""

    n_trials: int = Field(default=0, ge=0)
    batch_size: int = Field(default=2, ge=1, description="trials asked at once; fixed so results ignore the engine")
    seed: int = 42


class TrainSettings(Section):
    seed: int
    parallel: ParallelSettings = Field(default_factory=ParallelSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    candidates: dict[str, Candidate] = Field(min_length=1)

    @field_validator("candidates", mode="before")
    @classmethod
    def _known_family(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, spec in value.items():
                family = spec.get("family") if isinstance(spec, dict) else None
                if family not in FAMILIES:
                    raise ValueError(
                        f"candidate '{name}' has unknown family {family!r}; known families: {', '.join(FAMILIES)}"
                    )
        return value

    @model_validator(mode="after")
    def _search_spaces_fit_their_candidates(self) -> TrainSettings:
        for name, spec in self.candidates.items():
            check_search(name, spec)
        return self

    def enabled(self) -> dict[str, Candidate]:
        return {name: spec for name, spec in self.candidates.items() if spec.enabled}


class SliceSettings(Section):
    columns: list[str] = Field(default_factory=list)
    min_size: int = Field(default=30, ge=1)
    bins: int = Field(default=4, ge=2)


class EvaluateSettings(Section):
    # null: the task's default (components.vocabulary.DEFAULT_PRIMARY_METRIC); checked against the task on resolve
    primary_metric: Literal[ALL_PRIMARY_METRICS] | None = None  # type: ignore[valid-type]
    decision_threshold: float = Field(gt=0, lt=1)
    # Dataset-specific: null takes them from the contract's `evaluation` section (components.dataset_settings).
    thresholds: dict[str, float] | None = None
    slices: SliceSettings | None = None
    behaviour: list[dict[str, Any]] | None = None


class PromoteSettings(Section):
    registered_model: str | None = Field(default=None, min_length=1)  # null: the contract's name
    alias: str = "champion"
    policy: Literal["superior", "non_inferior"]
    margin: float = Field(ge=0)
    n_resamples: int = Field(ge=100)
    confidence: float = Field(gt=0, lt=1)
    max_slice_drop: float = Field(ge=0)
    seed: int


class InfraValidationSettings(Section):
    enabled: bool = True
    rows: int = Field(ge=1)
    p95_budget_ms: float = Field(gt=0)


class PackageSettings(Section):
    # null: derived from the registered model's name
    service_name: str | None = Field(default=None, min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    infra_validation: InfraValidationSettings
    # Image pipelines: ship the chosen CNN with int8 Linear layers (PyTorch dynamic quantization) when it
    # loses at most quantize_max_accuracy_drop accuracy (a share: 0.01 is one point) on the test images.
    quantize: bool = False
    quantize_max_accuracy_drop: float = Field(default=0.01, ge=0, le=1)


class ServeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    max_batch: int = Field(default=1000, ge=1)
    low_confidence_threshold: float = Field(default=0.6, gt=0.5, le=1)
    # share of served requests whose inputs and answers are recorded for `mlops monitor --served` (0 = off)
    monitor_sample: float = Field(default=0.0, ge=0, le=1)


class BatchSettings(Section):
    # rows validated and scored at a time by `mlops predict`: memory holds one chunk whatever the file size
    chunk_rows: int = Field(default=250_000, ge=1)
    parallel: ParallelSettings = ParallelSettings()  # where chunks are scored: same engines as train.parallel


class MonitorSettings(Section):
    """When a scored batch, its late labels or served traffic raise the `mlops.model.drift` alarm."""

    drift_share: float = Field(default=0.5, gt=0, le=1, description="alarm above this share of drifted columns")
    max_metric_drop: float = Field(default=0.05, ge=0, description="alarm when a realized metric is worse by more")
    cooldown_hours: float = Field(default=24.0, ge=0, description="one alarm event per model within this window")


class Settings(Section):
    data: DataSettings
    validate_: ValidateSettings = Field(alias="validate")
    train: TrainSettings
    evaluate: EvaluateSettings
    promote: PromoteSettings
    package: PackageSettings
    serve: ServeSettings
    batch: BatchSettings = BatchSettings()
    monitor: MonitorSettings = MonitorSettings()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def as_params(self) -> dict[str, Any]:
        """The effective params as plain data, keyed as in params.yaml."""
        return self.model_dump(mode="json", by_alias=True)


def params_hash(params: dict[str, Any]) -> str:
    """A stable short hash of a params mapping (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``section.key=value`` overrides applied.

    Values are parsed as YAML (``3`` is an int, ``[1, 2]`` a list). Only keys
    that already exist may be overridden, so a typo is an error, not a no-op.
    """
    result = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        parts = key.split(".")
        node: Any = result
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"unknown params key '{where}' in override {item!r}")
            if depth == len(parts) - 1:
                value = yaml.safe_load(text)
                # null is allowed through: the typed settings then say whether that section is optional
                if isinstance(node[part], dict) and not isinstance(value, dict) and value is not None:
                    raise ConfigError(f"'{key}' is a section, not a value; set one of its keys, e.g. {key}.<key>=...")
                node[part] = value
            else:
                node = node[part]
    return result


def _dotted_key(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as the params key: no validator markers, no candidate family tag."""
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "tagged-"))]
    if len(parts) > 3 and parts[:2] == ["train", "candidates"] and parts[3] in FAMILIES:
        del parts[3]
    return ".".join(parts).replace("validate_", "validate")


def _format_error(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        loc = _dotted_key(problem["loc"])
        kind = problem["type"]
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, KeyedError):
            lines.append(str(cause))
        elif kind == "missing":
            lines.append(f"missing key '{loc}'")
        elif kind == "extra_forbidden":
            lines.append(f"unknown key '{loc}'")
        else:
            lines.append(f"key '{loc}': {problem['msg']} (got {problem.get('input')!r})")
    return "invalid params: " + "; ".join(lines)


def parse_settings(raw: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections")
    return raw


def load_settings(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Settings:
    """Load ``params.yaml`` once, apply ``--set`` overrides, validate."""
    raw = load_raw(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_settings(raw)
