"""The DVC driver carries the task: the same stage commands on a multiclass and a regression dataset
choose among that task's candidates, by that task's primary metric, and write that task's plots."""

import json

import pytest
import yaml

from components.config import apply_overrides, load_raw
from components.data.contract_inference import infer_contract
from components.data.contract_yaml import save_contract
from components.data.dataset import write_parquet
from flows import stages
from tests.conftest import make_project
from tests.e2e.test_tasks import diabetes_frame, wine_frame
from tests.flows.test_stages import declared_plots_found

QUICK = ["train.candidates.mlp.enabled=false", "train.candidates.hgb.max_iter=30",
         "train.candidates.rf.n_estimators=30", "train.candidates.lgbm.n_estimators=40"]  # fmt: skip


def _project(root, frame, target, name):
    make_project(root)
    write_parquet(frame, root / "data" / "dataset.parquet")
    save_contract(infer_contract(frame, target, name=name), root / "contracts" / f"{name}.yaml")
    raw = apply_overrides(load_raw(root / "params.yaml"),
                          [*QUICK, f"validate.contract=contracts/{name}.yaml", f"data.target={target}"])  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def _repro(root) -> dict:
    def run(*args):
        return stages.main(["--params", str(root / "params.yaml"), "--out", str(root / "runs" / "dvc"), *args])

    candidates = [["train", c] for c in load_raw(root / "params.yaml")["train"]["candidates"]]
    for args in (["ingest"], ["validate"], ["split"], *candidates, ["evaluate"]):
        assert run(*args) == 0, args
    return json.loads((root / "runs" / "dvc" / "evaluate" / "result.json").read_text())


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("wine"), wine_frame(), "cultivar", "wine")


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("diabetes"), diabetes_frame(), "progression", "diabetes")


def test_multiclass_stages_choose_by_macro_f1_among_classifiers(wine):
    result = _repro(wine)
    out = wine / "runs" / "dvc"
    assert result["primary_metric"] == "f1_macro"
    assert set(result["candidates"]) == {"logreg", "hgb", "rf", "lgbm"}  # ridge is regression-only, mlp off
    assert (out / "models" / "ridge" / "disabled.json").is_file()
    assert result["chosen"] == max(result["candidates"], key=lambda c: result["candidates"][c]["f1_macro"])
    test = json.loads((out / "metrics" / "test.json").read_text())
    assert {"f1_macro", "roc_auc_ovr", "log_loss"} <= set(test)
    found = {p.rsplit("/", 1)[1] for p in declared_plots_found(wine)}
    assert found == {"pr.json", "confusion.csv"}


def test_regression_stages_choose_the_lowest_rmse_among_regressors(diabetes):
    result = _repro(diabetes)
    out = diabetes / "runs" / "dvc"
    assert result["primary_metric"] == "rmse"
    assert set(result["candidates"]) == {"ridge", "hgb", "rf", "lgbm"}  # logreg is classification-only
    assert (out / "models" / "logreg" / "disabled.json").is_file()
    assert result["chosen"] == min(result["candidates"], key=lambda c: result["candidates"][c]["rmse"])
    test = json.loads((out / "metrics" / "test.json").read_text())
    assert {"rmse", "mae", "r2"} <= set(test)
    found = {p.rsplit("/", 1)[1] for p in declared_plots_found(diabetes)}
    assert found == {"predicted.csv", "residuals.json"}
