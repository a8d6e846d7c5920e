"""The candidates of ``params.yaml``'s ``train.candidates``: one typed spec per model family, and its search space.

``components.config`` builds ``train.candidates`` from these; they build only on
``components.settings_base``, so the arrows point one way:
config -> candidate_settings -> settings_base.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from components.model.tasks import TASKS
from components.settings_base import KeyedError, Section

# Keys of a candidate spec that configure the pipeline, not the model.
# ``image`` is filled in from an image contract (what the pixels are read as), never searched.
NON_MODEL_KEYS = ("family", "enabled", "search", "tasks", "image")


class SearchDimension(Section):
    """One searched hyper-parameter: a numeric range ``{low, high, log, type}`` or ``{choices: [...]}``.

    One model with a check rather than a union of two, so a mistake gives one
    error about this key instead of one per union member.
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchDimension:
        if self.choices is not None:
            return self._check_choices()
        return self._check_range()

    def _check_choices(self) -> SearchDimension:
        mixed = sorted({"low", "high", "log", "type"} & self.model_fields_set)
        if mixed:
            raise ValueError(f"give either choices or a range, not both (also got {', '.join(mixed)})")
        if not self.choices:
            raise ValueError("choices must list at least one value")
        return self

    def _check_range(self) -> SearchDimension:
        if self.low is None or self.high is None:
            raise ValueError("a search dimension needs low and high, or choices")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, but low is {self.low:g}")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"type: int needs whole-number bounds, but they are {self.low:g} and {self.high:g}")
        return self

    @property
    def is_categorical(self) -> bool:
        return self.choices is not None

    def extremes(self) -> list[Any]:
        """Values that bound what a search can sample: the range ends, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class _Candidate(Section):
    # The tasks this candidate trains for; None claims every task (its family must then support the run's).
    tasks: list[Literal[TASKS]] | None = Field(default=None, min_length=1)  # type: ignore[valid-type]
    enabled: bool = True
    search: dict[str, SearchDimension] | None = None

    @classmethod
    def hyper_parameters(cls) -> tuple[str, ...]:
        """Fields a search may vary: everything but the bookkeeping keys, in declaration order."""
        return tuple(k for k in cls.model_fields if k not in NON_MODEL_KEYS)

    def as_spec(self) -> dict[str, Any]:
        """The plain dict training takes; the search space stays typed (its dump would not re-validate)."""
        return {**self.model_dump(exclude={"search"}), "search": self.search}


class LogRegCandidate(_Candidate):
    family: Literal["sklearn_logreg"]
    C: float = Field(gt=0)
    max_iter: int = Field(ge=1)


class RidgeCandidate(_Candidate):
    family: Literal["sklearn_ridge"]
    alpha: float = Field(gt=0)


class HGBCandidate(_Candidate):
    family: Literal["sklearn_hgb"]
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)


class RFCandidate(_Candidate):
    family: Literal["sklearn_rf"]
    n_estimators: int = Field(ge=1)
    max_depth: int | None = Field(default=None, ge=1, description="null: grow until min_samples_leaf stops it")
    min_samples_leaf: int = Field(ge=1)


class LightGBMCandidate(_Candidate):
    family: Literal["lightgbm"]
    n_estimators: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    num_leaves: int = Field(ge=2)
    min_child_samples: int = Field(ge=1)


class TorchMLPCandidate(_Candidate):
    family: Literal["torch_mlp"]
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    hidden: list[int] = Field(min_length=1)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="epochs without validation-loss improvement before training stops"
    )


class _ImageCandidate(_Candidate):
    # The image contract's image section (size, mode, resize policy): set by the pipeline from the
    # contract, so a model reads new images as its training images were read.
    image: dict[str, Any] | None = None


class TorchCNNCandidate(_ImageCandidate):
    """The small CNN of components.images.cnn; defaults reach 0.96-0.98 held-out accuracy on the digits."""

    family: Literal["torch_cnn"]
    epochs: int = Field(default=60, ge=1)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=0.003, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int | None = Field(default=5, ge=1, description="epochs without val-loss improvement; null: all")
    augment: bool = Field(default=False, description="random one-pixel moves and brightness shifts while training")
    shift_pixels: int = Field(default=1, ge=0)
    brightness: float = Field(default=0.1, ge=0, le=1)
    channels: list[int] = Field(default=[16, 32], min_length=1)


class PixelLogRegCandidate(_ImageCandidate):
    """Multinomial logistic regression on the flattened pixels: the baseline a CNN must beat."""

    family: Literal["sklearn_logreg_pixels"]
    C: float = Field(default=1.0, gt=0)
    max_iter: int = Field(default=2000, ge=1)


# The tasks each family can learn (components.model.tasks); the keys are the known families, in the order
# error messages list them.
FAMILY_TASKS: dict[str, tuple[str, ...]] = {
    "sklearn_logreg": ("binary", "multiclass"),
    "sklearn_hgb": TASKS,
    "torch_mlp": TASKS,
    "sklearn_ridge": ("regression",),
    "sklearn_rf": TASKS,
    "lightgbm": TASKS,
    "torch_cnn": ("binary", "multiclass"),
    "sklearn_logreg_pixels": ("binary", "multiclass"),
}
FAMILIES = tuple(FAMILY_TASKS)
# Families that learn from images (an image contract's data); the others learn from tables.
IMAGE_FAMILIES = ("torch_cnn", "sklearn_logreg_pixels")
Candidate = Annotated[
    LogRegCandidate
    | HGBCandidate
    | TorchMLPCandidate
    | RidgeCandidate
    | RFCandidate
    | LightGBMCandidate
    | TorchCNNCandidate
    | PixelLogRegCandidate,
    Field(discriminator="family"),
]


def _is_integer_field(model: type[BaseModel], field: str) -> bool:
    annotation = model.model_fields[field].annotation
    return annotation is int or int in get_args(annotation)


def check_search(name: str, spec: _Candidate) -> None:
    """Every searched key must be a hyper-parameter of the family, and every value it can take valid for it.

    Checked here, at load time, so a typo in a search space fails before any
    trial has run rather than as a failed trial (or silently ignored key).
    """
    key = f"train.candidates.{name}.search"
    known = spec.hyper_parameters()
    for param, dim in (spec.search or {}).items():
        if param not in known:
            raise KeyedError(key, f"{param!r} is not a parameter of {spec.family} (known: {', '.join(known)})")
        if not dim.is_categorical and dim.type == "float" and _is_integer_field(type(spec), param):
            raise KeyedError(f"{key}.{param}", f"{param} is an integer parameter; add type: int to its range")
        base = spec.model_dump(exclude={"search"})
        for value in dim.extremes():
            try:
                type(spec).model_validate({**base, param: value}, strict=True)
            except ValidationError as err:
                reason = err.errors()[0]["msg"]
                raise KeyedError(f"{key}.{param}", f"{value!r} is not a valid {param} ({reason})") from None
