"""The image pipeline's wiring, without Prefect: settings and contracts, the fit of an image frame, the fit
cache's format, the folder's version, the split frames, quantization and the gate's class slices."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from components.config import ConfigError, load_settings
from components.data.dataset import DataNotFoundError
from components.data.errors import ContractError
from components.dataset_settings import load_any_contract
from components.images.contract import ImageContract
from components.images.image_model import ImageModel
from components.images.manifest import scan_images
from components.images.split import split_images
from components.training.families import train_candidate
from flows import image_steps, quantize_step, steps
from tests.conftest import ROOT

DIGITS = ROOT / "pipelines" / "digits"


@pytest.fixture
def project(tmp_path, digits_dir) -> Path:
    """A copy of pipelines/digits with the digits written and a `.dvc` file naming their true hash."""
    from components.fingerprint import dataset_fingerprint

    root = tmp_path / "digits-project"
    shutil.copytree(DIGITS, root, ignore=shutil.ignore_patterns("data", "mlflow.db", "mlartifacts", ".bentoml"))
    shutil.copytree(digits_dir, root / "data" / "digits")
    md5 = dataset_fingerprint(root / "data" / "digits") + ".dir"
    (root / "data" / "digits.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "digits"}]}))
    return root


def test_the_digits_params_resolve_to_an_image_run(project):
    ctx = steps.resolve(project / "params.yaml")
    assert isinstance(ctx.contract, ImageContract) and steps.is_images(ctx)
    assert ctx.task == "multiclass" and ctx.name == "digits-classifier"
    assert ctx.settings.evaluate.primary_metric == "f1_macro"  # from the contract's evaluation section
    assert [b["kind"] for b in ctx.settings.evaluate.behaviour] == ["brightness", "translation", "golden"]
    cnn = ctx.settings.train.candidates["cnn"]
    assert cnn.image == {"width": 8, "height": 8, "mode": "L", "resize": "none"}  # read as the contract says
    assert "image" not in cnn.hyper_parameters()  # never searched


def _with_candidate(params: Path, name: str, spec: dict) -> None:
    raw = yaml.safe_load(params.read_text())
    raw["train"]["candidates"][name] = spec
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_table_family_on_images_and_an_image_family_on_a_table_are_refused(project, tmp_path):
    _with_candidate(project / "params.yaml", "lr", {"family": "sklearn_logreg", "C": 1.0, "max_iter": 50})
    with pytest.raises(ConfigError, match=r"train.candidates.lr.family: sklearn_logreg learns from tables"):
        steps.resolve(project / "params.yaml")
    table = tmp_path / "table"
    shutil.copytree(ROOT / "contracts", table / "contracts")
    shutil.copy(ROOT / "params.yaml", table / "params.yaml")
    _with_candidate(table / "params.yaml", "cnn", {"family": "torch_cnn"})
    with pytest.raises(ConfigError, match=r"train.candidates.cnn.family: torch_cnn learns from images"):
        steps.resolve(table / "params.yaml", require_data=False)


def test_an_image_candidate_key_outside_its_family_is_an_error_naming_it(project):
    with pytest.raises(ConfigError, match="kernel"):
        load_settings(project / "params.yaml", ["train.candidates.cnn.kernel=3"])


def test_contracts_load_by_their_kind(tmp_path):
    images = load_any_contract(DIGITS / "contract.yaml")
    assert isinstance(images, ImageContract) and images.target == "label"
    assert images.evaluation["thresholds"] == {"accuracy": 0.9}
    table = load_any_contract(next((ROOT / "contracts").glob("*.yaml")))
    assert not isinstance(table, ImageContract)
    bad = yaml.safe_load((DIGITS / "contract.yaml").read_text()) | {"evaluation": {"slice": []}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ContractError, match=r"evaluation.*slice"):
        load_any_contract(tmp_path / "bad.yaml")


def test_the_version_is_dvcs_hash_only_while_the_files_are_that_version(project):
    ctx = steps.resolve(project / "params.yaml")
    tracked = yaml.safe_load((project / "data" / "digits.dvc").read_text())["outs"][0]["md5"]
    assert image_steps.tracked_md5(ctx) == tracked
    (project / "data" / "digits" / "3" / "extra.png").write_bytes((project / "golden" / "three.png").read_bytes())
    with pytest.raises(DataNotFoundError, match=r"dvc add data/digits"):
        image_steps.tracked_md5(ctx)
    shutil.rmtree(project / "data" / "digits")
    with pytest.raises(DataNotFoundError, match="not found"):
        steps.resolve(project / "params.yaml")


def test_split_frames_name_files_by_path_and_content(project):
    ctx = steps.resolve(project / "params.yaml")
    manifest = scan_images(ctx.data_path)
    paths = split_images(manifest, test_size=0.2, val_size=0.2, seed=42)
    splits = image_steps.split_frames(ctx, manifest, paths)
    assert list(splits.train.columns) == ["image", "sha256", "label"]
    assert sum(splits.sizes().values()) == len(manifest)
    first = splits.test.iloc[0]
    assert Path(first["image"]).is_absolute() and Path(first["image"]).parent.name == first["label"]
    assert set(splits.train["sha256"]).isdisjoint(splits.test["sha256"])


def _frame(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"image": list((X[:, 0] * 255).astype(np.uint8)), "sha256": "x", "label": y})


def test_train_candidate_fits_an_image_family_from_a_frame(digits):
    (X, y), (X_val, y_val) = digits["train"], digits["val"]
    spec = {"family": "sklearn_logreg_pixels", "C": 1.0, "max_iter": 500,
            "image": {"width": 8, "height": 8, "mode": "L", "resize": "none"}}  # fmt: skip
    train, val = _frame(X, y), _frame(X_val, y_val)
    model = train_candidate("px", spec["family"], spec, train.drop(columns=["label"]), train["label"], seed=0,
                            task="multiclass", X_val=val.drop(columns=["label"]), y_val=val["label"])  # fmt: skip
    assert isinstance(model, ImageModel) and model.classes == [str(d) for d in range(10)]
    assert "image" not in model.params  # the reading spec is the model's ImageSpec, not a hyper-parameter
    assert (model.predict_frame(val)["label"] == val["label"]).mean() > 0.9
    with pytest.raises(ValueError, match="no image contract"):
        train_candidate("px", spec["family"], {**spec, "image": None}, train.drop(columns=["label"]), train["label"],
                        seed=0, task="multiclass", X_val=val.drop(columns=["label"]), y_val=val["label"])  # fmt: skip


def test_the_fit_cache_stores_an_image_model_without_pickle(digits):
    from components.evaluation.metrics import EvalResult
    from components.images.image_model import train_image_candidate
    from flows.prefect_cache import TrainedResultSerializer

    (X, y), (X_val, y_val) = digits["train"], digits["val"]
    model = train_image_candidate("px", "sklearn_logreg_pixels", {"max_iter": 300}, X, y, X_val, y_val, 0)
    result = EvalResult("px", "val", len(y_val), {"accuracy": 0.9})
    blob = TrainedResultSerializer().dumps((model, result))
    loaded, loaded_result = TrainedResultSerializer().loads(blob)
    assert isinstance(loaded, ImageModel) and loaded_result == result
    np.testing.assert_allclose(loaded.predict_proba(X_val), model.predict_proba(X_val))


def test_quantization_is_a_choice_with_a_bound(project, cnn, digits):
    ctx = steps.resolve(project / "params.yaml")
    X, y = digits["test"]
    test = _frame(X, y)
    same, report, note = quantize_step.quantized(ctx, cnn, test)
    assert same is cnn and report is None and note == ""  # off: nothing to say
    on = steps.resolve(project / "params.yaml", ["package.quantize=true"])
    marked, report, note = quantize_step.quantized(on, cnn, test)
    assert report["accepted"] and "accepted" in note and marked.fit["quantization"]["scheme"] == "dynamic_int8"
    assert report["size_bytes_quantized"] < report["size_bytes_float"]
    strict = steps.resolve(project / "params.yaml", ["package.quantize=true", "package.quantize_max_accuracy_drop=0"])
    kept, report, note = quantize_step.quantized(strict, cnn, test)
    assert report["accepted"] == (report["accuracy_quantized"] >= report["accuracy_float"])
    assert ("quantization" in kept.fit) == report["accepted"]


def test_the_gate_compares_the_champion_class_by_class(project, cnn, digits):
    ctx = steps.resolve(project / "params.yaml", ["promote.n_resamples=200"])
    X, y = digits["test"]
    test = _frame(X, y)
    assessment = image_steps.assess(ctx, cnn, test, project / "runs" / "t")
    assert set(assessment.slices) == {f"label={d}" for d in range(10)}
    assert (project / "runs" / "t" / "plots").is_dir()
    from flows.release_steps import baseline

    base = baseline(ctx, cnn, test, len(test))
    worse = assessment.proba.copy()
    three = cnn.classes.index("3")
    worse[assessment.y_true == three] = np.eye(10)[(three + 1) % 10]  # a champion that never gets a 3 right
    decision = image_steps.gate(ctx, assessment, base, test, "1", worse)
    assert decision.promote, decision.reason
    assert set(decision.slices) == {f"label={d}" for d in range(10)}
    assert decision.slices["label=3"]["champion"] == 0.0  # its accuracy on the 3s: the class's recall
    assert decision.slices["label=3"]["challenger"] > 0.9


def test_mlops_validate_checks_a_folder_against_an_image_contract(spoiled, tmp_path, capsys):
    from tests.conftest import cli

    code = cli("--params", DIGITS / "params.yaml", "validate", "--data", spoiled, "--report-dir", tmp_path / "r")
    out = capsys.readouterr().out
    assert code == 4  # the stray label folder blocks (severity unknown_label: block)
    assert "x/stray.png" in out and "3/truncated.png" in out and "REJECTED" in out
    assert (tmp_path / "r" / "validation_report.html").is_file()
