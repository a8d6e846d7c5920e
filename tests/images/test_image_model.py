"""Image candidates on the digits: both families learn, predict from paths, bytes and arrays, and survive a
pickle-free save and load unchanged; tampered files are refused.

Accuracies measured on split_images(seed 0..2): CNN 0.964-0.981 (augmented 0.978-0.989), logistic
regression on pixels 0.947-0.961. The bars sit a little under: behaviour checks, not benchmarks.
"""

import json
import zipfile

import numpy as np
import pytest
import torch

from components.images.image_model import SKLEARN_LOGREG, TORCH_CNN, resolve_params, train_image_candidate
from components.images.model_files import SPEC_FILE, load_image_model, save_image_model
from components.images.pixels import ImageSpec, load_pixels
from components.images.split import split_images
from components.model.files import UnsafeModelFileError

torch.set_num_threads(1)

SPEC = ImageSpec(width=8, height=8, mode="L")
MIN_ACCURACY = {TORCH_CNN: 0.94, SKLEARN_LOGREG: 0.92}


@pytest.fixture(scope="module")
def splits(digits_dir, digits_manifest):
    """train / val / test as (pixels, labels), read from the PNG folders as the pipeline will."""
    paths = split_images(digits_manifest, test_size=0.2, val_size=0.2, seed=0)
    return {
        name: (load_pixels(files, SPEC, root=digits_dir), [f.split("/")[0] for f in files], files)
        for name, files in paths.items()
    }


@pytest.fixture(scope="module")
def models(splits):
    (X, y, _), (X_val, y_val, _) = splits["train"], splits["val"]
    return {family: train_image_candidate(f"digits-{family}", family, {}, X, y, X_val, y_val, seed=0, image=SPEC)
            for family in (TORCH_CNN, SKLEARN_LOGREG)}  # fmt: skip


@pytest.mark.parametrize("family", [TORCH_CNN, SKLEARN_LOGREG])
def test_both_families_learn_the_digits(models, splits, family):
    model = models[family]
    X_test, y_test, _ = splits["test"]
    labels, probabilities = model.predict_arrays(X_test)
    accuracy = float(np.mean(labels == np.asarray(y_test)))
    assert accuracy >= MIN_ACCURACY[family], f"{family}: accuracy {accuracy:.3f}"
    assert model.classes == [str(d) for d in range(10)] and model.task == "multiclass"
    assert probabilities.shape == (len(y_test), 10) and np.allclose(probabilities.sum(axis=1), 1)
    assert model.fit["val_loss" if family == SKLEARN_LOGREG else "best_epoch"] > 0


def test_predictions_read_paths_bytes_and_arrays_alike(models, splits, digits_dir):
    model = models[TORCH_CNN]
    X_test, _, files = splits["test"]
    from_arrays = model.predict_proba(X_test[:5])
    np.testing.assert_array_equal(model.predict_proba(files[:5], root=digits_dir), from_arrays)
    blobs = [(digits_dir / f).read_bytes() for f in files[:5]]
    np.testing.assert_array_equal(model.predict_proba(blobs), from_arrays)
    np.testing.assert_array_equal(model.predict_proba(np.rint(X_test[:5, 0] * 255).astype(np.uint8)), from_arrays)


def test_predict_frame_has_the_label_its_probability_and_one_column_per_class(models, splits):
    model = models[SKLEARN_LOGREG]
    frame = model.predict_frame(splits["test"][0][:4])
    assert list(frame.columns) == ["label", "probability"] + [f"proba_{d}" for d in range(10)]
    assert frame["label"].map(type).eq(str).all()
    for _, row in frame.iterrows():
        assert row["probability"] == row[f"proba_{row['label']}"]


@pytest.mark.parametrize("family", [TORCH_CNN, SKLEARN_LOGREG])
def test_save_and_load_give_identical_probabilities(models, splits, tmp_path, family):
    model = models[family]
    X_test = splits["test"][0]
    loaded = load_image_model(save_image_model(model, tmp_path / family))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert (loaded.name, loaded.family, loaded.classes, loaded.image) == (
        model.name, model.family, model.classes, model.image)  # fmt: skip
    assert loaded.params == model.params and loaded.fit == model.fit
    spec = json.loads((tmp_path / family / SPEC_FILE).read_text())
    if family == TORCH_CNN:
        assert spec["architecture"] == {"in_channels": 1, "height": 8, "width": 8, "n_classes": 10,
                                        "channels": [16, 32]}  # fmt: skip


def test_a_tampered_skops_file_is_refused_naming_it(models, tmp_path):
    directory = save_image_model(models[SKLEARN_LOGREG], tmp_path / "logreg")
    path = directory / "estimator.skops"
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(entries["schema.json"])
    schema["__module__"], schema["__class__"] = "os", "system"  # what an attacker would have it call
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(UnsafeModelFileError, match=r"estimator\.skops.*os\.system"):
        load_image_model(directory)


class _NotATensor:
    pass


def test_weights_holding_anything_but_tensors_are_refused_naming_the_file(models, tmp_path):
    directory = save_image_model(models[TORCH_CNN], tmp_path / "cnn")
    weights = directory / json.loads((directory / SPEC_FILE).read_text())["weights"]
    if weights.suffix != ".pt":
        pytest.skip("safetensors files hold tensors only; nothing to smuggle in")
    state = torch.load(weights, weights_only=True)
    torch.save(state | {"payload": _NotATensor()}, weights)
    with pytest.raises(UnsafeModelFileError, match=r"cnn_state\.pt: refused by torch\.load\(weights_only=True\)"):
        load_image_model(directory)


def test_unknown_family_or_params_are_errors_naming_them(splits):
    with pytest.raises(ValueError, match="family 'torch_vit' is not one of torch_cnn, sklearn_logreg_pixels"):
        resolve_params("torch_vit", {})
    with pytest.raises(ValueError, match="torch_cnn params: unknown key.s. epoch;"):
        resolve_params(TORCH_CNN, {"epoch": 3})
    assert resolve_params(TORCH_CNN, {"augment": True})["augment"] is True
    X, y, _ = splits["train"]
    with pytest.raises(ValueError, match=r"y_val has labels not seen in training: \['7'\]"):
        train_image_candidate("x", SKLEARN_LOGREG, {}, X[:50], ["1"] * 25 + ["2"] * 25, X[:2], ["7", "1"], seed=0)
