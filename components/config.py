"""Typed settings loaded once from ``params.yaml``.

Every knob lives in ``params.yaml``; this module turns it into frozen pydantic
objects so a missing key or a wrong type fails at start-up with the dotted key
in the message, not deep inside a training step.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """params.yaml (or an override) is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    source: str = Field(description="'sklearn:breast_cancer' or a path to a CSV/Parquet file")
    path: str = Field(description="where ingest writes the dataset (tracked by DVC)")
    target: str
    test_size: float = Field(gt=0, lt=1)
    val_size: float = Field(gt=0, lt=1)
    seed: int


class ValidateSettings(_Section):
    contract: str | None = None
    min_rows: int = Field(ge=1)
    max_null_fraction: float = Field(ge=0, le=1)


class _Candidate(_Section):
    enabled: bool = True


class LogRegCandidate(_Candidate):
    family: Literal["sklearn_logreg"]
    C: float = Field(gt=0)
    max_iter: int = Field(ge=1)


class HGBCandidate(_Candidate):
    family: Literal["sklearn_hgb"]
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)


class TorchMLPCandidate(_Candidate):
    family: Literal["torch_mlp"]
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    hidden: list[int] = Field(min_length=1)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(default=0.0, ge=0)


FAMILIES = ("sklearn_logreg", "sklearn_hgb", "torch_mlp")
Candidate = Annotated[LogRegCandidate | HGBCandidate | TorchMLPCandidate, Field(discriminator="family")]


class TrainSettings(_Section):
    seed: int
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

    def enabled(self) -> dict[str, Candidate]:
        return {name: spec for name, spec in self.candidates.items() if spec.enabled}


class SliceSettings(_Section):
    columns: list[str] = Field(default_factory=list)
    min_size: int = Field(ge=1)
    bins: int = Field(default=4, ge=2)


class EvaluateSettings(_Section):
    primary_metric: Literal["roc_auc", "pr_auc", "f1", "accuracy", "balanced_accuracy"]
    decision_threshold: float = Field(gt=0, lt=1)
    thresholds: dict[str, float]
    slices: SliceSettings
    behaviour: list[dict[str, Any]] = Field(default_factory=list)


class PromoteSettings(_Section):
    registered_model: str = Field(min_length=1)
    alias: str = "champion"
    policy: Literal["superior", "non_inferior"]
    margin: float = Field(ge=0)
    n_resamples: int = Field(ge=100)
    confidence: float = Field(gt=0, lt=1)
    max_slice_drop: float = Field(ge=0)
    seed: int


class InfraValidationSettings(_Section):
    enabled: bool = True
    rows: int = Field(ge=1)
    p95_budget_ms: float = Field(gt=0)


class PackageSettings(_Section):
    service_name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    infra_validation: InfraValidationSettings


class ServeSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    max_batch: int = Field(default=1000, ge=1)
    low_confidence_threshold: float = Field(default=0.6, gt=0.5, le=1)


class Settings(_Section):
    data: DataSettings
    validate_: ValidateSettings = Field(alias="validate")
    train: TrainSettings
    evaluate: EvaluateSettings
    promote: PromoteSettings
    package: PackageSettings
    serve: ServeSettings

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
                if isinstance(node[part], dict) and not isinstance(value, dict):
                    raise ConfigError(f"'{key}' is a section, not a value; set one of its keys, e.g. {key}.<key>=...")
                node[part] = value
            else:
                node = node[part]
    return result


def _format_error(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        loc = ".".join(str(p) for p in problem["loc"] if not str(p).startswith(("function-", "tagged-")))
        loc = loc.replace("validate_", "validate")
        kind = problem["type"]
        if kind == "missing":
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
