"""The CNN's training loop: seeded and deterministic, early stopping keeps the best epoch, augmentation is reproducible.

Small fits on a slice of the digits (a few epochs each); the accuracy check is in test_image_model.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from components.images.cnn import augment_batch, build_cnn, cnn_loss, cnn_probabilities, fit_cnn

torch.set_num_threads(1)

FAST = {"epochs": 3, "batch_size": 64, "lr": 0.003, "patience": None}


@pytest.fixture(scope="module")
def data():
    """400 training and 200 validation digits as (n, 1, 8, 8) floats in [0, 1], with class indices."""
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    return X[:400], digits.target[:400], X[400:600], digits.target[400:600]


def _fit(data, **changes):
    X, y, X_val, y_val = data
    return fit_cnn(X, y, X_val, y_val, **({"seed": 0, "augment": False} | FAST | changes))


def test_the_net_maps_images_to_one_logit_per_class():
    net = build_cnn(1, 8, 8, 10)
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert sum(p.numel() for p in net.parameters()) < 20_000  # tiny: seconds on one CPU thread
    assert build_cnn(3, 12, 10, 4, (8,))(torch.zeros(2, 3, 12, 10)).shape == (2, 4)


def test_same_seed_same_net_other_seed_other_net(data):
    X_val = data[2]
    net_a, record_a = _fit(data)
    net_b, record_b = _fit(data)
    net_c, _ = _fit(data, seed=1)
    np.testing.assert_array_equal(cnn_probabilities(net_a, X_val), cnn_probabilities(net_b, X_val))
    assert record_a == record_b
    assert not np.array_equal(cnn_probabilities(net_a, X_val), cnn_probabilities(net_c, X_val))
    probabilities = cnn_probabilities(net_a, X_val)
    assert probabilities.shape == (200, 10) and np.allclose(probabilities.sum(axis=1), 1)
    assert record_a.epochs_trained == record_a.best_epoch == 3 and not record_a.stopped_early


def test_fitting_restores_the_callers_rng_and_determinism_setting(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    was = torch.are_deterministic_algorithms_enabled()
    _fit(data, epochs=1)
    assert torch.are_deterministic_algorithms_enabled() == was
    assert torch.equal(torch.rand(3), expected)  # the global stream went on as if nothing had run


def test_early_stopping_stops_when_validation_loss_stalls_and_keeps_the_best_weights(data):
    X, y, X_val, y_val = data
    # A high learning rate on 400 images overfits fast: validation loss turns up within a few epochs.
    net, record = fit_cnn(X, y, X_val, y_val, seed=0, epochs=200, batch_size=32, lr=0.01, patience=3, augment=False)
    assert record.stopped_early and record.epochs_trained < 200
    assert record.epochs_trained == record.best_epoch + 3
    assert record.best_epoch == int(np.argmin(record.val_losses)) + 1
    val_loss = cnn_loss(net, torch.as_tensor(X_val), torch.as_tensor(y_val))
    assert val_loss == pytest.approx(min(record.val_losses), rel=1e-6)  # the best epoch's weights, not the last
    assert len(record.train_losses) == len(record.val_losses) == record.epochs_trained


def test_augmentation_changes_the_fit_and_stays_deterministic(data):
    X_val = data[2]
    plain, _ = _fit(data)
    augmented_a, _ = _fit(data, augment=True)
    augmented_b, _ = _fit(data, augment=True)
    p_plain, p_a = cnn_probabilities(plain, X_val), cnn_probabilities(augmented_a, X_val)
    np.testing.assert_array_equal(p_a, cnn_probabilities(augmented_b, X_val))
    assert not np.array_equal(p_plain, p_a)


def test_augment_batch_shifts_by_at_most_one_pixel_and_shifts_brightness_a_little():
    x = torch.as_tensor((load_digits().images[:50] / 16.0).astype(np.float32)[:, None])
    shifted = augment_batch(x, torch.Generator().manual_seed(0), shift_pixels=1, brightness=0.0)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(len(x)):  # each image equals one of the nine one-pixel translations of the original
        crops = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(shifted[i], crop) for crop in crops)
    assert not torch.equal(shifted, x)
    brighter = augment_batch(x, torch.Generator().manual_seed(0), shift_pixels=0, brightness=0.1)
    assert (brighter - x).abs().max() <= 0.1 + 1e-6 and brighter.min() >= 0 and brighter.max() <= 1
    again = augment_batch(x, torch.Generator().manual_seed(0), shift_pixels=0, brightness=0.1)
    assert torch.equal(brighter, again)


def test_bad_inputs_are_refused(data):
    X, y, X_val, y_val = data
    with pytest.raises(ValueError, match=r"X: expected images \(n, C, H, W\)"):
        fit_cnn(X[:, 0], y, X_val, y_val, seed=0, augment=False, **FAST)
    with pytest.raises(ValueError, match="X_val: 200 images for 10 labels"):
        fit_cnn(X, y, X_val, y_val[:10], seed=0, augment=False, **FAST)
    with pytest.raises(ValueError, match="patience must be at least 1"):
        fit_cnn(X, y, X_val, y_val, seed=0, augment=False, **(FAST | {"patience": 0}))
