"""Dynamic int8 quantization of the digits CNN and the tabular MLP, its report, its gate, and how it is stored.

Measured here (digits, seed 0, 450 test images, augmented CNN): accuracy 0.980 float and quantized,
predictions identical, state_dict 42,389 -> 27,789 bytes; latency about equal (the int8 head is a
small share of the work: the convolutions stay float). No latency is asserted: they are data.
"""

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
import torch

from components.images.image_model import SKLEARN_LOGREG, train_image_candidate
from components.images.model_files import load_image_model, save_image_model
from components.images.quantize import (
    QUANTIZATION_RECIPE,
    is_quantized,
    marked_for_quantization,
    quantization_gate,
    quantization_report,
    quantize_at_load,
    quantize_dynamic_int8,
)
from components.training.families import train_candidate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def quantized(cnn):
    return quantize_dynamic_int8(cnn)


@pytest.fixture(scope="module")
def report(cnn, quantized, digits):
    X_test, y_test = digits["test"]
    return quantization_report(cnn, quantized, X_test, y_test, repeats=3, single_rows=5)


def _linear_bytes(net) -> int:
    """Serialized size of the Linear layers' state alone (float or quantized)."""
    kept = {k: v for k, v in net.state_dict().items() if k.startswith("6.")}  # the CNN's head: layer 6
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    return len(buffer.getvalue())


def test_quantized_cnn_agrees_with_the_float_one(cnn, quantized, digits):
    X_test, _ = digits["test"]
    agree = np.mean(cnn.predict_arrays(X_test)[0] == quantized.predict_arrays(X_test)[0])
    assert agree >= 0.95
    assert is_quantized(quantized) and not is_quantized(cnn)  # the input keeps its float net
    assert type(quantized) is type(cnn) and quantized.fit["quantization"] == QUANTIZATION_RECIPE
    assert "quantization" not in cnn.fit
    assert type(quantized.estimator[0]) is torch.nn.Conv2d  # convolutions stay float
    assert _linear_bytes(quantized.estimator) < _linear_bytes(cnn.estimator)


def test_report_numbers_are_consistent(report, digits):
    assert report["n_rows"] == len(digits["test"][1])
    assert report["accuracy_change"] == pytest.approx(report["accuracy_quantized"] - report["accuracy_float"])
    assert report["agreement"] >= 0.95 and 0.9 <= report["accuracy_float"] <= 1
    assert 0 < report["size_bytes_quantized"] <= report["size_bytes_float"]
    assert report["size_ratio"] == pytest.approx(report["size_bytes_quantized"] / report["size_bytes_float"])
    for key in ("batch", "row"):
        for kind in ("float", "quantized"):
            assert report[f"latency_{key}_seconds_{kind}"] > 0  # measured, never compared


def test_gate_passes_within_the_bound_and_fails_beyond_it(report):
    passed, reason = quantization_gate(report, max_accuracy_drop=0.01)
    assert passed and "accepted" in reason
    worse = report | {"accuracy_float": 0.98, "accuracy_quantized": 0.95}
    passed, reason = quantization_gate(worse, max_accuracy_drop=0.01)
    assert not passed
    assert "0.9500 quantized vs 0.9800 float" in reason and "drop +0.0300" in reason and "bound 0.01" in reason
    assert quantization_gate(worse, max_accuracy_drop=0.03)[0]  # a drop equal to the bound passes
    with pytest.raises(ValueError, match="max_accuracy_drop"):
        quantization_gate(report, max_accuracy_drop=-0.1)


def test_only_torch_families_quantize_and_only_once(quantized, digits):
    (X, y), (X_val, y_val) = digits["train"], digits["val"]
    logreg = train_image_candidate("lr", SKLEARN_LOGREG, {"max_iter": 200}, X[:300], y[:300], X_val, y_val, seed=0)
    with pytest.raises(ValueError, match="family 'sklearn_logreg_pixels'.*torch_cnn, torch_mlp only"):
        quantize_dynamic_int8(logreg)
    with pytest.raises(ValueError, match="already quantized"):
        quantize_dynamic_int8(quantized)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # torch's own qtensor rebuild says it
def test_a_quantized_state_dict_loads_with_weights_only_into_a_quantized_net(quantized, digits):
    """The finding behind the recipe: weights_only reads it, but only a net quantized alike takes it."""
    buffer = io.BytesIO()
    torch.save(quantized.estimator.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    target = quantize_dynamic_int8(dataclasses.replace(quantized, estimator=_fresh_cnn(), fit={}))
    target.estimator.load_state_dict(state)
    X_test = digits["test"][0]
    np.testing.assert_array_equal(target.predict_proba(X_test), quantized.predict_proba(X_test))
    with pytest.raises(RuntimeError):  # a float net has no place for packed int8 weights
        _fresh_cnn().load_state_dict(state)


def _fresh_cnn():
    from components.images.cnn import build_cnn

    return build_cnn(1, 8, 8, 10).eval()


def test_stored_as_float_weights_and_quantized_at_load(cnn, quantized, digits, tmp_path):
    marked = marked_for_quantization(cnn)
    assert not is_quantized(marked) and marked.fit["quantization"] == QUANTIZATION_RECIPE
    loaded = quantize_at_load(load_image_model(save_image_model(marked, tmp_path / "model")))
    assert is_quantized(loaded)
    X_test = digits["test"][0]
    np.testing.assert_array_equal(loaded.predict_proba(X_test), quantized.predict_proba(X_test))
    assert quantize_at_load(cnn) is cnn  # no recipe: as it was
    with pytest.raises(ValueError, match="unknown quantization recipe"):
        quantize_at_load(dataclasses.replace(cnn, fit={"quantization": {"scheme": "static_int4"}}))


def test_tabular_mlp_quantizes_and_predicts():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "colour": rng.choice(["r", "g"], n)})
    target = pd.Series(np.where(frame["a"] + 0.5 * frame["b"] > 0, "yes", "no"), name="target")
    # Wide enough for int8 to pay: on a [16] net the per-layer scales and packing make the quantized
    # state_dict larger (3,789 vs 2,653 bytes), which the report shows as a size_ratio above 1.
    params = {"hidden": [128, 64], "epochs": 20, "lr": 0.01, "batch_size": 32}
    model = train_candidate("mlp", "torch_mlp", params, frame[:300], target[:300], seed=0)
    quantized = quantize_dynamic_int8(model)
    assert is_quantized(quantized) and not is_quantized(model) and "quantization" not in model.extra
    assert quantized.extra["quantization"] == QUANTIZATION_RECIPE and quantized.feature_columns == model.feature_columns
    scores = quantized.predict_scores(frame[300:])
    assert scores.shape == (100,) and np.all((scores >= 0) & (scores <= 1))
    report = quantization_report(model, quantized, frame[300:], target[300:], repeats=2, single_rows=3)
    assert report["agreement"] >= 0.95 and report["accuracy_float"] >= 0.85
    assert 0 < report["size_bytes_quantized"] <= report["size_bytes_float"]
    assert quantization_gate(report, max_accuracy_drop=0.02)[0], report
