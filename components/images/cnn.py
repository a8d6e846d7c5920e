"""The image candidate: a small convolutional net trained by a seeded, deterministic loop.

Two 3x3 convolutions (same padding, ReLU), one 2x2 max-pool and a linear head, one logit per
class: about 10k weights for 8x8 digits, trained in seconds on one CPU thread. Training is
reproducible: weights start from ``seed``, batches and augmentation draw from one generator
seeded with it, and deterministic algorithms are on while it runs. The global torch RNG and the
deterministic-algorithms setting are restored afterwards, so fitting leaves no trace on the caller.
Early stopping watches the cross-entropy on the validation images and keeps the best epoch's weights.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.model.quantization import forward
from components.model.torch_net import _BestWeights

log = logging.getLogger(__name__)

DEFAULT_CHANNELS = (16, 32)


def build_cnn(in_channels: int, height: int, width: int, n_classes: int, channels: tuple[int, ...] = DEFAULT_CHANNELS):
    """The net for ``(in_channels, height, width)`` inputs: these sizes are all a saved model needs to rebuild it."""
    import torch.nn as nn

    if len(channels) < 1 or min(height, width) < 2:
        raise ValueError(
            f"a CNN needs at least one conv layer and images of 2x2 or more, got {channels}, {width}x{height}"
        )
    layers: list[nn.Module] = []
    previous = in_channels
    for size in channels:
        layers += [nn.Conv2d(previous, size, kernel_size=3, padding=1), nn.ReLU()]
        previous = size
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(previous * (height // 2) * (width // 2), n_classes)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class CNNFitRecord:
    """How training went. ``best_epoch`` (1-based) is the epoch whose weights the net holds."""

    epochs_trained: int
    best_epoch: int
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    stopped_early: bool


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seeded global RNG and deterministic algorithms inside; the caller's RNG state and setting after."""
    import torch

    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def augment_batch(x, generator, shift_pixels: int, brightness: float):
    """Each image moved by up to ``shift_pixels`` in each direction (zeros come in) and shifted in
    brightness by up to ``brightness``, clipped to [0, 1]: the changes a digit should not care about.
    All draws come from ``generator``, so an augmented fit is as reproducible as a plain one."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    if shift_pixels > 0:
        s = shift_pixels
        padded = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        x = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    if brightness > 0:
        offset = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * brightness
        x = (x + offset).clamp(0.0, 1.0)
    return x


def _check(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, patience: int | None) -> None:
    for name, images, labels in (("X", X, y), ("X_val", X_val, y_val)):
        if np.ndim(images) != 4:
            raise ValueError(f"{name}: expected images (n, C, H, W), got shape {np.shape(images)}")
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"{name}: {len(images)} images for {len(labels)} labels; need as many, and some")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")


def _epoch(net, optimiser, loss_fn, X, y, batch_size: int, generator, augment: dict | None) -> float:
    """One pass in a seeded random order (augmented if asked); the mean training loss."""
    import torch

    net.train()
    order = torch.randperm(len(X), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = X[idx] if augment is None else augment_batch(X[idx], generator, **augment)
        optimiser.zero_grad()
        loss = loss_fn(net(batch), y[idx])
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
    return total / len(order)


def cnn_loss(net, X, y) -> float:
    """Mean cross-entropy of ``net`` on image tensors and class indices (the early-stopping criterion)."""
    import torch

    net.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net(X), y))


def fit_cnn(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int | None,
    augment: bool,
    shift_pixels: int = 1,
    brightness: float = 0.1,
    weight_decay: float = 0.0,
    channels: tuple[int, ...] = DEFAULT_CHANNELS,
) -> tuple[Any, CNNFitRecord]:
    """Train a CNN on images ``(n, C, H, W)`` in [0, 1] and class indices ``y`` (0..k-1); the net ends in eval mode.

    The number of classes is ``max(y, y_val) + 1``. With ``patience``, training stops after that many epochs
    without a lower validation loss and the best epoch's weights are put back; without it, all ``epochs`` run
    and the last weights are kept (validation loss is still recorded).
    """
    import torch

    _check(X, y, X_val, y_val, patience)
    X_t, X_val_t = (torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in (X, X_val))
    y_t, y_val_t = (torch.as_tensor(np.asarray(a, dtype=np.int64)) for a in (y, y_val))
    n_classes = int(max(y_t.max(), y_val_t.max())) + 1
    augmentation = {"shift_pixels": shift_pixels, "brightness": brightness} if augment else None
    train_losses: list[float] = []
    val_losses: list[float] = []
    best = _BestWeights(patience if patience is not None else epochs + 1)
    stop = False
    with deterministic_torch(seed):
        generator = torch.Generator().manual_seed(seed)
        net = build_cnn(X_t.shape[1], X_t.shape[2], X_t.shape[3], n_classes, tuple(channels))
        optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        for epoch in range(1, epochs + 1):
            train_losses.append(_epoch(net, optimiser, loss_fn, X_t, y_t, batch_size, generator, augmentation))
            val_losses.append(cnn_loss(net, X_val_t, y_val_t))
            stop = best.update(net, val_losses[-1], epoch) and patience is not None
            if stop:
                break
    if patience is not None and best.state is not None:
        net.load_state_dict(best.state)
    best_epoch = best.epoch if patience is not None else len(train_losses)
    net.eval()
    log.info("cnn: %d epochs, best %d (val loss %.4f)%s", len(train_losses), best_epoch,
             val_losses[best_epoch - 1], ", stopped early" if stop else "")  # fmt: skip
    return net, CNNFitRecord(len(train_losses), best_epoch, tuple(train_losses), tuple(val_losses), stop)


def cnn_probabilities(net, X: np.ndarray, batch_rows: int = 4096) -> np.ndarray:
    """Class probabilities ``(n, k)`` for images ``(n, C, H, W)``: softmax in float64, so rows sum to 1."""
    import torch

    net.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(X), batch_rows):  # bounded memory for large batches
            chunk = torch.as_tensor(np.asarray(X[start : start + batch_rows], dtype=np.float32))
            parts.append(torch.softmax(forward(net, chunk).double(), dim=1).numpy())
    if not parts:
        return np.zeros((0, net[-1].out_features), dtype=np.float64)
    return np.concatenate(parts)
