"""Behaviour tests for image classifiers: invariance to brightness and to a small translation, and golden images.

The image counterpart of ``components.evaluation.behaviour``, with the same results
(``BehaviourResult``: name, kind, passed, detail, numbers), so the gate records both alike. Specs are
plain dicts as the contract's ``evaluation.behaviour`` section holds them; every spec is checked before
the model runs, and an error names the test and the key.

- ``brightness``: ``delta`` is added to every pixel, clipped to [0, 1]; the share of images whose
  predicted label stays must be at least ``min_agreement``.
- ``translation``: the images move by ``pixels`` (default 1) up, down, left and right, zeros coming in
  (what a digit written a little off-centre looks like); every direction must keep ``min_agreement``.
- ``golden``: ``images`` (anything ``load_pixels`` reads: paths under ``root``, bytes, arrays) must all
  be predicted as their ``expected`` labels.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from components.evaluation.behaviour import BehaviourResult, unique_names
from components.evaluation.behaviour_specs import class_index
from components.images.pixels import ImageSpec, load_pixels

KINDS = ("brightness", "translation", "golden")
# Every key each kind reads; anything else is a typo, and an error naming it.
_KEYS = {
    "brightness": {"required": ("delta", "min_agreement"), "optional": ("name", "kind")},
    "translation": {"required": ("min_agreement",), "optional": ("name", "kind", "pixels")},
    "golden": {"required": ("images", "expected"), "optional": ("name", "kind")},
}
# (rows, columns) each direction moves an image by, per pixel of ``pixels``.
DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


class ImageClassifier(Protocol):
    """What the tests need: ``ImageModel`` is one; so is any object with these three."""

    classes: list[Any]
    image: ImageSpec

    def predict_proba(self, images: Any) -> np.ndarray: ...


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_image_spec(spec: Mapping[str, Any], position: int, model: ImageClassifier) -> dict[str, Any]:
    """``spec`` checked, with its defaults and name filled in (golden: the class index of each label).

    Raises ValueError naming the test (its name, else ``#position``) and the key at fault.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"image behaviour test #{position}: a spec is a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    label = spec.get("name") or f"#{position}"
    if kind not in KINDS:
        raise ValueError(f"image behaviour test {label}: kind {kind!r} is not one of {', '.join(KINDS)}")
    keys = _KEYS[kind]
    missing = [k for k in keys["required"] if k not in spec]
    if missing:
        raise ValueError(f"image behaviour test {label} ({kind}): missing key(s) {', '.join(missing)}")
    unknown = sorted(str(k) for k in spec if k not in keys["required"] + keys["optional"])
    if unknown:
        known = ", ".join(keys["required"] + keys["optional"])
        raise ValueError(f"image behaviour test {label} ({kind}): unknown key(s) {', '.join(unknown)}; known: {known}")
    checked = {**spec, "name": spec.get("name") or kind}
    if kind == "golden":
        return checked | {"expected_index": _golden_indices(spec, label, model.classes)}
    agreement = spec["min_agreement"]
    if not _is_number(agreement) or not 0 <= agreement <= 1:
        raise ValueError(f"image behaviour test {label} ({kind}): min_agreement must be in [0, 1], got {agreement!r}")
    if kind == "brightness":
        delta = spec["delta"]
        if not _is_number(delta) or delta == 0 or abs(delta) >= 1:
            raise ValueError(f"image behaviour test {label} (brightness): delta must be a number with "
                             f"0 < |delta| < 1 (a share of full brightness), got {delta!r}")  # fmt: skip
        return checked
    pixels = spec.get("pixels", 1)
    size = min(model.image.height, model.image.width)
    if isinstance(pixels, bool) or not isinstance(pixels, numbers.Integral) or not 1 <= pixels < size:
        shape = f"{model.image.width}x{model.image.height}"
        raise ValueError(f"image behaviour test {label} (translation): pixels must be a whole number from 1 "
                         f"to {size - 1} (the image is {shape}), got {pixels!r}")  # fmt: skip
    return checked | {"pixels": int(pixels)}


def _golden_indices(spec: Mapping[str, Any], label: str, classes: Sequence[Any]) -> list[int]:
    images, expected = spec["images"], spec["expected"]
    if isinstance(images, str | bytes | Path) or not isinstance(expected, Sequence) or isinstance(expected, str):
        raise ValueError(f"image behaviour test {label} (golden): images and expected must be lists")
    if len(images) != len(expected) or len(expected) == 0:
        raise ValueError(f"image behaviour test {label} (golden): images ({len(images)}) and expected "
                         f"({len(expected)}) must be as many, and at least one")  # fmt: skip
    found = [class_index(e, list(classes)) for e in expected]  # a YAML 3 finds the label "3"
    bad = [e for e, i in zip(expected, found, strict=True) if i is None]
    if bad:
        raise ValueError(f"image behaviour test {label} (golden): expected holds {bad!r}, "
                         f"not a class of the model ({list(classes)!r})")  # fmt: skip
    return found  # type: ignore[return-value]


def brightened(images: np.ndarray, delta: float) -> np.ndarray:
    """``images`` with ``delta`` added to every pixel, clipped to [0, 1] (a new array)."""
    return np.clip(images + np.float32(delta), 0.0, 1.0).astype(np.float32, copy=False)


def translated(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``images`` ``(n, C, H, W)`` moved by ``rows`` down and ``columns`` right (negative: up, left);
    the pixels moved in are zeros and those moved out are lost (a new array)."""
    out = np.zeros_like(images)
    h, w = images.shape[2:]
    src_r, dst_r = slice(max(-rows, 0), h - max(rows, 0)), slice(max(rows, 0), h - max(-rows, 0))
    src_c, dst_c = slice(max(-columns, 0), w - max(columns, 0)), slice(max(columns, 0), w - max(-columns, 0))
    out[:, :, dst_r, dst_c] = images[:, :, src_r, src_c]
    return out


def _answers(model: ImageClassifier, images: Any) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(model.predict_proba(images), dtype=np.float64)
    return np.argmax(proba, axis=1), proba


def _agreement(base: np.ndarray, after: np.ndarray) -> tuple[float, int]:
    kept = int(np.sum(base == after))
    return kept / len(base), kept


def _brightness(spec, model, images: np.ndarray, base: np.ndarray):
    after, _ = _answers(model, brightened(images, spec["delta"]))
    share, kept = _agreement(base, after)
    bound = spec["min_agreement"]
    detail = (
        f"brightness {spec['delta']:+g}: {share:.2%} of images keep their label ({kept}/{len(base)}); "
        f"required at least {bound:.2%}"
    )
    numbers = {"agreement": share, "n_kept": kept, "n_images": len(base), "min_agreement": bound,
               "delta": spec["delta"]}  # fmt: skip
    return share >= bound, detail, numbers


def _translation(spec, model, images: np.ndarray, base: np.ndarray):
    bound, pixels = spec["min_agreement"], spec["pixels"]
    shares = {}
    for direction, (dr, dc) in DIRECTIONS.items():
        after, _ = _answers(model, translated(images, dr * pixels, dc * pixels))
        shares[direction] = _agreement(base, after)[0]
    worst = min(shares, key=shares.get)
    each = ", ".join(f"{d} {s:.2%}" for d, s in shares.items())
    detail = (
        f"moved {pixels} pixel(s): labels kept {each}; the worst ({worst}) is "
        f"{'at least' if shares[worst] >= bound else 'below'} the required {bound:.2%}"
    )
    numbers = {f"agreement_{d}": s for d, s in shares.items()}
    numbers |= {"min_agreement_seen": shares[worst], "n_images": len(base), "min_agreement": bound, "pixels": pixels}
    return shares[worst] >= bound, detail, numbers


def _golden(spec, model, root: str | Path | None):
    pixels = load_pixels(list(spec["images"]), model.image, root=root)
    got, proba = _answers(model, pixels)
    expected = np.asarray(spec["expected_index"])
    wrong = np.flatnonzero(got != expected)
    names = list(model.classes)
    shown = ", ".join(
        f"image {i}: expected {names[expected[i]]} got {names[got[i]]} (p={proba[i, got[i]]:.3f})" for i in wrong[:5]
    )
    top = np.sort(proba, axis=1)
    detail = f"{len(got) - len(wrong)}/{len(got)} golden images predicted as expected" + (f"; {shown}" if shown else "")
    numbers = {"n_images": len(got), "n_correct": int(len(got) - len(wrong)),
               "min_margin": float(np.min(top[:, -1] - top[:, -2]))}  # fmt: skip
    return len(wrong) == 0, detail, numbers


def run_image_behaviour(
    model: ImageClassifier,
    images: np.ndarray,
    specs: Sequence[Mapping[str, Any]],
    *,
    root: str | Path | None = None,
) -> list[BehaviourResult]:
    """Run each spec in order; the invariance tests perturb ``images`` (model input ``(n, C, H, W)`` in
    [0, 1], e.g. the test split), the golden ones read their own images (paths under ``root``).

    Every spec is checked first; a bad one raises ValueError before the model is called.
    """
    checked = [check_image_spec(spec, i, model) for i, spec in enumerate(specs)]
    images = np.asarray(images, dtype=np.float32)
    if any(s["kind"] != "golden" for s in checked) and (images.ndim != 4 or len(images) == 0):
        raise ValueError(f"invariance tests need images (n, C, H, W) with n >= 1, got shape {images.shape}")
    unique_names(checked)
    base = None
    results = []
    for spec in checked:
        if spec["kind"] == "golden":
            passed, detail, numbers = _golden(spec, model, root)
        else:
            base = _answers(model, images)[0] if base is None else base
            run = _brightness if spec["kind"] == "brightness" else _translation
            passed, detail, numbers = run(spec, model, images, base)
        results.append(BehaviourResult(spec["name"], spec["kind"], bool(passed), detail, numbers))
    return results
