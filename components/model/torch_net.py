"""The PyTorch candidate: a small MLP trained by a seeded, deterministic loop.

One head per task: a single logit with binary cross-entropy (binary), one logit per class with
cross-entropy (multiclass), a single linear output with squared error on the standardised target
(regression; the mean and standard deviation travel with the model so predictions come out in
target units). Early stopping watches the same loss on the validation data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.model.quantization import forward
from components.model.tasks import BINARY, MULTICLASS, REGRESSION, check_task

log = logging.getLogger(__name__)


def build_mlp(n_inputs: int, hidden: list[int], n_outputs: int = 1):
    """A feed-forward net emitting ``n_outputs`` values per row (one logit per class for multiclass)."""
    import torch.nn as nn

    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class MLPFit:
    """A trained net and how training went.

    ``best_epoch`` (1-based) is the epoch whose weights ``net`` holds: the last one
    without early stopping, the one with the lowest validation loss with it.
    """

    net: Any
    epochs_trained: int
    best_epoch: int
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...] = ()  # empty without validation data
    target_mean: float = 0.0  # regression: the net predicts (y - target_mean) / target_std
    target_std: float = 1.0


class _BestWeights:
    """Keeps the weights of the epoch with the lowest validation loss and counts epochs since."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.loss = math.inf
        self.epoch = 0
        self.state: dict[str, Any] | None = None

    def update(self, net, loss: float, epoch: int) -> bool:
        """Record this epoch's validation loss; True when training should stop."""
        if loss < self.loss:
            self.loss, self.epoch = loss, epoch
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return epoch - self.epoch >= self.patience


def _as_tensors(X: np.ndarray, y: np.ndarray, task: str = BINARY):
    """Features, and the target as the task's loss takes it (class indices for cross-entropy)."""
    import torch

    features = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if task == MULTICLASS:
        return features, torch.as_tensor(np.asarray(y, dtype=np.int64))
    labels = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
    return features, labels


def _loss_fn(task: str):
    import torch

    return {BINARY: torch.nn.BCEWithLogitsLoss, MULTICLASS: torch.nn.CrossEntropyLoss, REGRESSION: torch.nn.MSELoss}[
        task
    ]()


def _train_epoch(net, optimiser, loss_fn, features, labels, batch_size: int, generator) -> float:
    """One pass in a seeded random order; returns the mean training loss."""
    import torch

    net.train()
    order = torch.randperm(len(features), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        optimiser.zero_grad()
        loss = loss_fn(net(features[idx]), labels[idx])
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
    return total / len(order)


def validation_loss(net, X: np.ndarray, y: np.ndarray, task: str = BINARY) -> float:
    """The training loss of ``task`` on preprocessed features: the early-stopping criterion.

    For regression ``y`` is the standardised target, as the net was trained on it.
    """
    import torch

    features, labels = _as_tensors(X, y, task)
    net.eval()
    with torch.no_grad():
        return float(_loss_fn(task)(net(features), labels))


def mean_bce(net, X: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of ``net`` on preprocessed features (the binary early-stopping criterion)."""
    return validation_loss(net, X, y, BINARY)


def _standardise(y: np.ndarray, y_val: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, float, float]:
    """A regression target as the net learns it: zero mean, unit spread (a constant target keeps spread 1)."""
    y = np.asarray(y, dtype=np.float64)
    mean, std = float(y.mean()), float(y.std())
    if not np.isfinite(std) or std == 0.0:
        std = 1.0
    scaled_val = None if y_val is None else (np.asarray(y_val, dtype=np.float64) - mean) / std
    return (y - mean) / std, scaled_val, mean, std


def _check_validation(X_val, y_val, patience: int | None) -> None:
    if (X_val is None) != (y_val is None):
        raise ValueError("fit_mlp needs both X_val and y_val, or neither")
    if patience is not None and X_val is None:
        raise ValueError(f"patience={patience} needs validation data: pass X_val and y_val")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")


def fit_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: list[int],
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    patience: int | None = None,
    task: str = BINARY,
    n_outputs: int = 1,
) -> MLPFit:
    """Train an MLP on already-preprocessed features; the returned net is in eval mode.

    ``y`` is the encoded target (``components.model.tasks.encode_target``); a multiclass net
    has ``n_outputs`` = the number of classes, the other tasks one output.

    With ``patience`` (and validation data) training stops after ``patience``
    epochs without a lower validation loss and the best epoch's weights are put
    back, so more epochs can only help validation loss, never hurt it.
    Validation data without ``patience`` is only scored and logged.
    """
    import torch

    _check_validation(X_val, y_val, patience)
    check_task(task)
    if (n_outputs >= 2) != (task == MULTICLASS):
        raise ValueError(f"a {task} net needs {'one output per class' if task == MULTICLASS else 'one output'}, "
                         f"got n_outputs={n_outputs}")  # fmt: skip
    mean, std = 0.0, 1.0
    if task == REGRESSION:
        y, y_val, mean, std = _standardise(y, y_val)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(seed)
    net = build_mlp(X.shape[1], hidden, n_outputs)
    features, labels = _as_tensors(X, y, task)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = _loss_fn(task)
    best = _BestWeights(patience) if patience is not None else None
    train_losses: list[float] = []
    val_losses: list[float] = []
    for epoch in range(1, epochs + 1):
        train_losses.append(_train_epoch(net, optimiser, loss_fn, features, labels, batch_size, generator))
        if X_val is not None:
            val_losses.append(validation_loss(net, X_val, y_val, task))
        stop = best is not None and best.update(net, val_losses[-1], epoch)
        if epoch % 10 == 0 or epoch == epochs or stop:
            _log_epoch(epoch, epochs, train_losses, val_losses)
        if stop:
            log.info("mlp early stop after epoch %d: no better validation loss since epoch %d", epoch, best.epoch)
            break
    return _finish(net, best, train_losses, val_losses, mean, std)


def _log_epoch(epoch: int, epochs: int, train_losses: list[float], val_losses: list[float]) -> None:
    if val_losses:
        log.info("mlp epoch %d/%d loss %.4f val loss %.4f", epoch, epochs, train_losses[-1], val_losses[-1])
    else:
        log.info("mlp epoch %d/%d loss %.4f", epoch, epochs, train_losses[-1])


def _finish(
    net, best: _BestWeights | None, train_losses: list[float], val_losses: list[float], mean: float, std: float
) -> MLPFit:
    """Put back the best weights (if tracked) and package the outcome."""
    epochs_trained = len(train_losses)
    best_epoch = epochs_trained
    if best is not None and best.state is not None:
        net.load_state_dict(best.state)
        best_epoch = best.epoch
    net.eval()
    return MLPFit(net, epochs_trained, best_epoch, tuple(train_losses), tuple(val_losses), mean, std)


def mlp_proba(net, X: np.ndarray) -> np.ndarray:
    """Positive-class probability for preprocessed features."""
    import torch

    with torch.no_grad():
        logits = forward(net, torch.as_tensor(np.asarray(X, dtype=np.float32)))
        return torch.sigmoid(logits).reshape(-1).double().numpy()


def mlp_scores(net, X: np.ndarray, task: str = BINARY, target_mean: float = 0.0, target_std: float = 1.0):
    """Scores for preprocessed features (``components.model.tasks``): P(positive), class probabilities
    (softmax in float64, so every row sums to 1 as metrics expect), or the value in target units."""
    import torch

    if task == BINARY:
        return mlp_proba(net, X)
    with torch.no_grad():
        out = forward(net, torch.as_tensor(np.asarray(X, dtype=np.float32))).double()
    if task == MULTICLASS:
        return torch.softmax(out, dim=1).numpy()
    return out.reshape(-1).numpy() * target_std + target_mean
