"""Metrics per class of an image classifier: the image pipeline's slices.

Images have no feature columns to slice by, so the slices are the true classes: ``label=3`` holds
the test images whose label is ``3``. The table has the shape of the tabular multiclass slices
(``components.evaluation.slices``: ``n``, ``accuracy``, then the other multiclass primary metrics), so
the gate's per-slice non-regression compares a challenger's class with the champion's unchanged.

On a slice that holds one true class some metrics lose their meaning, and are None as the tabular
slices leave undefined metrics None: ``f1_macro`` and ``f1_weighted`` would average the class's F1
with zeros for whichever wrong classes happen to be predicted, and ``roc_auc_ovr`` needs every class.
The gate then compares ``accuracy``, which here is the class's recall. That suffices: a challenger
that buys recall on one class by over-predicting it loses recall on the classes it takes images from.
``recall``, ``precision`` and ``f1`` of the class (one against the rest, over the whole test set) are
added for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from components.evaluation.slices import SliceTable
from components.vocabulary import PRIMARY_METRICS

SLICE_PREFIX = "label"  # slice names read "label=3", as the tabular ones read "column=value"
# The tabular multiclass slice keys after n, in their order; those a one-class slice cannot define
# (f1_macro, f1_weighted, roc_auc_ovr: see the module docstring) are kept as keys, with None.
_SLICE_METRICS = ("accuracy", *(m for m in PRIMARY_METRICS["multiclass"] if m != "accuracy"))
_CLIP = 1e-15  # as components.evaluation.metrics clips before its logarithm


def slice_name(label: Any) -> str:
    """The slice of the images whose true label is ``label``."""
    return f"{SLICE_PREFIX}={label}"


def class_slice_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any], *, min_size: int = 1
) -> SliceTable:
    """Per class, keyed ``label=<class>`` in ``classes`` order: ``n`` (its test images) and the multiclass
    slice metrics, with the class's ``recall``, ``precision`` and ``f1`` besides.

    ``y_true`` holds class indices (``ImageModel.encode_target``), ``proba`` the ``(n, k)`` probabilities
    in ``classes`` order. Classes with fewer than ``min_size`` test images are left out: their numbers
    are noise. Vectorised: one confusion matrix, no loop over images.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if p.ndim != 2 or p.shape != (len(y), k):
        raise ValueError(f"proba must have shape ({len(y)}, {k}) for {len(y)} labels and {k} classes, got {p.shape}")
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"y_true holds class indices outside 0..{k - 1}")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    pred = np.argmax(p, axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)  # rows: true class, columns: predicted class
    np.add.at(confusion, (y, pred), 1)
    support, predicted, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    # Mean cross-entropy of the images of each class: the tabular slices' log_loss, per class.
    nll = -np.log(np.clip(p[np.arange(len(y)), y], _CLIP, 1 - _CLIP))
    nll_sum = np.bincount(y, weights=nll, minlength=k)
    table: SliceTable = {}
    for c, label in enumerate(classes):  # one iteration per class, not per image
        n = int(support[c])
        if n < min_size:
            continue
        recall = hits[c] / n
        precision = hits[c] / predicted[c] if predicted[c] else 0.0  # zero_division=0, as the metrics use
        f1 = 2 * hits[c] / (n + predicted[c])  # n >= 1, so the denominator is never 0
        # balanced_accuracy is the mean recall over the classes present: this one class's recall.
        defined = {"accuracy": recall, "balanced_accuracy": recall, "log_loss": nll_sum[c] / n}
        row = {"n": n} | {m: None if m not in defined else float(defined[m]) for m in _SLICE_METRICS}
        table[slice_name(label)] = row | {"recall": float(recall), "precision": float(precision), "f1": float(f1)}
    return table
