"""The image contract: what a folder of labelled images must look like before anything trains on it.

A YAML file with ``kind: images`` (see ``pipelines/digits/contract.yaml``) loaded
into a frozen dataclass. Rules on single files (``FILE_RULES``) may quarantine the
file, block the run or warn; rules on the whole set (``SET_RULES``) block or warn.
Errors name the key, as the tabular contract's do, and raise the same
``ContractError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.data.contract_sections import task_from_labels
from components.data.errors import ContractError

KIND = "images"
SEVERITIES = ("block", "warn", "quarantine")
FILE_RULES = ("unreadable", "wrong_size", "wrong_mode", "unknown_label")
SET_RULES = ("min_per_class", "class_balance", "quarantine_share")
DEFAULT_SEVERITY = {"unreadable": "quarantine", "wrong_size": "quarantine", "wrong_mode": "quarantine"}
# none: a wrong size breaks the contract (rule wrong_size). fit: every image is resized to exactly
# width x height when read (aspect ratio not kept), so a wrong size is recorded, not a violation.
RESIZE_POLICIES = ("none", "fit")
# Pillow's modes an image file decodes to; "L" is 8-bit gray, "RGB" colour.
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F")
LABEL_SOURCES = ("folder",)
TARGET = "label"  # data.target of an image pipeline
EVALUATION_KEYS = ("primary_metric", "thresholds", "behaviour")


@dataclass(frozen=True)
class ImageContract:
    """A labelled image folder's contract; ``severity`` holds the overrides of the defaults."""

    name: str
    width: int
    height: int
    mode: str
    labels: tuple[str, ...]  # allowed labels (folder names), in the contract's order
    resize: str = "none"
    min_per_class: int = 1
    max_class_ratio: float | None = None  # largest class / smallest class; None: not checked
    max_quarantine_fraction: float = 0.05
    duplicates_across_splits: str = "block"
    severity: dict[str, str] = field(default_factory=dict)
    # As in a tabular contract: primary_metric, thresholds, and behaviour (the image kinds of
    # components.images.behaviour); params.yaml's evaluate section overrides each.
    evaluation: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ContractError(f"image.{key}: expected a positive whole number of pixels, got {value!r}")
        if self.mode not in MODES:
            raise ContractError(f"image.mode: {self.mode!r} is not a Pillow mode; one of {', '.join(MODES)}")
        if self.resize not in RESIZE_POLICIES:
            raise ContractError(f"image.resize: {self.resize!r} is not one of {', '.join(RESIZE_POLICIES)}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ContractError(f"labels.allowed: expected at least two distinct labels, got {list(self.labels)}")
        if isinstance(self.min_per_class, bool) or not isinstance(self.min_per_class, int) or self.min_per_class < 0:
            raise ContractError(f"min_per_class: expected a whole number >= 0, got {self.min_per_class!r}")
        if self.max_class_ratio is not None and self.max_class_ratio < 1:
            raise ContractError(f"max_class_ratio: largest / smallest class is at least 1, got {self.max_class_ratio}")
        if not 0 <= self.max_quarantine_fraction <= 1:
            raise ContractError(f"max_quarantine_fraction: must be between 0 and 1, got {self.max_quarantine_fraction}")
        if self.duplicates_across_splits not in ("block", "warn"):
            raise ContractError(f"duplicates_across_splits: {self.duplicates_across_splits!r} must be block or warn")
        for rule, level in self.severity.items():
            if rule not in FILE_RULES + SET_RULES:
                raise ContractError(f"severity.{rule}: unknown rule; known: {', '.join(FILE_RULES + SET_RULES)}")
            if level not in SEVERITIES:
                raise ContractError(f"severity.{rule}: {level!r} is not one of {', '.join(SEVERITIES)}")
            if level == "quarantine" and rule not in FILE_RULES:
                raise ContractError(f"severity.{rule}: quarantine is only valid for rules on single files")

    def severity_of(self, rule: str) -> str:
        return self.severity.get(rule, DEFAULT_SEVERITY.get(rule, "block"))

    @property
    def task(self) -> str:
        """binary for two labels, multiclass for more: what the training step trains for."""
        return task_from_labels(list(self.labels))

    @property
    def kind(self) -> str:
        return KIND

    @property
    def target(self) -> str:
        """The label column of the pipeline's image frames (labels come from folder names)."""
        return TARGET


# --- from plain data / YAML -------------------------------------------------

_TOP_KEYS = ("name", "kind", "image", "labels", "min_per_class", "max_class_ratio", "severity")
_TOP_KEYS += ("max_quarantine_fraction", "duplicates_across_splits", "evaluation")
_IMAGE_KEYS = ("width", "height", "mode", "resize")
_LABEL_KEYS = ("from", "allowed")


def _mapping(value: Any, where: str, known: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: expected a mapping with keys {', '.join(known)}, got {value!r}")
    for key in value:
        if key not in known:
            raise ContractError(f"{where}.{key}: unknown key; known: {', '.join(known)}")
    return value


def _number(d: dict, key: str, default: Any, where: str | None = None) -> Any:
    value = d.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ContractError(f"{where or key}: expected a number, got {value!r}")
    return value


def _labels(spec: Any) -> tuple[str, ...]:
    spec = _mapping(spec, "labels", _LABEL_KEYS)
    source = spec.get("from", "folder")
    if source not in LABEL_SOURCES:
        raise ContractError(f"labels.from: {source!r} is not one of {', '.join(LABEL_SOURCES)}")
    allowed = spec.get("allowed")
    if not isinstance(allowed, list) or not allowed:
        raise ContractError("labels.allowed: expected a non-empty list of label folder names")
    for value in allowed:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ContractError(f"labels.allowed: {value!r} is not a folder name")
    # Folder names are text: YAML's 3 and "3" both name the folder 3.
    return tuple(str(v) for v in allowed)


def image_contract_from_dict(d: Any) -> ImageContract:
    """Build an ImageContract from plain data (as in the YAML file); errors name the key."""
    if not isinstance(d, dict):
        raise ContractError("contract: expected a mapping at the top level")
    for key in d:
        if key not in _TOP_KEYS:
            raise ContractError(f"{key}: unknown key; known: {', '.join(_TOP_KEYS)}")
    if d.get("kind") != KIND:
        got = "missing" if "kind" not in d else f"{d['kind']!r}"
        raise ContractError(f"kind: {got}; an image contract says `kind: {KIND}`")
    for key in ("name", "image", "labels"):
        if key not in d:
            raise ContractError(f"{key}: missing required key")
    image = _mapping(d["image"], "image", _IMAGE_KEYS)
    for key in ("width", "height", "mode"):
        if key not in image:
            raise ContractError(f"image.{key}: missing required key")
    severity = _mapping(d.get("severity") or {}, "severity", FILE_RULES + SET_RULES)
    evaluation = _mapping(d.get("evaluation") or {}, "evaluation", EVALUATION_KEYS)
    if not isinstance(evaluation.get("behaviour") or [], list):
        raise ContractError("evaluation.behaviour: expected a list of behaviour tests")
    return ImageContract(
        name=str(d["name"]),
        width=image["width"],
        height=image["height"],
        mode=str(image["mode"]),
        resize=str(image.get("resize", "none")),
        labels=_labels(d["labels"]),
        min_per_class=_number(d, "min_per_class", 1),
        max_class_ratio=_number(d, "max_class_ratio", None),
        max_quarantine_fraction=_number(d, "max_quarantine_fraction", 0.05),
        duplicates_across_splits=str(d.get("duplicates_across_splits", "block")),
        severity={str(k): str(v) for k, v in severity.items()},
        evaluation=dict(evaluation),
    )


def load_image_contract(path: str | Path) -> ImageContract:
    """Read an image contract YAML file; a missing file or invalid YAML is a ContractError too."""
    from components.data.contract import read_contract_yaml

    return image_contract_from_dict(read_contract_yaml(path))


def contract_kind(data: Any) -> str:
    """``images`` or ``table``: which loader a contract's plain data needs (tabular contracts have no kind)."""
    return str(data.get("kind", "table")) if isinstance(data, dict) else "table"
