"""The PyTorch candidate: a small MLP trained by a seeded, deterministic loop."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def build_mlp(n_inputs: int, hidden: list[int]):
    """A feed-forward binary classifier emitting one logit per row."""
    import torch.nn as nn

    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


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
):
    """Train an MLP on already-preprocessed features; returns the module in eval mode."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(seed)
    net = build_mlp(X.shape[1], hidden)
    features = torch.as_tensor(np.asarray(X, dtype=np.float32))
    labels = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net(features[idx]), labels[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            log.info("mlp epoch %d/%d loss %.4f", epoch + 1, epochs, total / len(order))
    net.eval()
    return net


def mlp_proba(net, X: np.ndarray) -> np.ndarray:
    """Positive-class probability for preprocessed features."""
    import torch

    with torch.no_grad():
        logits = net(torch.as_tensor(np.asarray(X, dtype=np.float32)))
        return torch.sigmoid(logits).reshape(-1).double().numpy()
