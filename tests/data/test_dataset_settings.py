"""Dataset-specific settings come from the contract unless params.yaml sets them."""

import dataclasses

import pytest

from components.config import ConfigError, load_settings
from components.data.contract import load_contract
from components.data.contract_inference import infer_contract
from components.dataset_settings import default_model_name, resolve, service_name_for
from tests.conftest import ROOT
from tests.messy import messy_frame


@pytest.fixture(scope="module")
def churn():
    return infer_contract(messy_frame(rows=800, seed=2), "Churn", name="Churn Export")


def test_a_fresh_contract_names_the_model_and_brings_its_evaluation(churn):
    settings = resolve(load_settings(ROOT / "params.yaml"), churn)
    assert settings.promote.registered_model == "Churn Export"
    assert settings.package.service_name == "churn-export"  # a valid BentoML service name
    assert settings.evaluate.thresholds == {}  # the baseline gate decides
    assert set(settings.evaluate.slices.columns) <= {"gender", "Contract", "PaymentMethod"}
    assert settings.evaluate.slices.columns and settings.evaluate.behaviour == []


def test_values_set_in_params_win_over_the_contract(churn):
    overrides = ["promote.registered_model=churn-v2", "evaluate.thresholds={roc_auc: 0.8}", "evaluate.behaviour=[]",
                 "evaluate.slices={columns: [gender], min_size: 5}"]  # fmt: skip
    settings = resolve(load_settings(ROOT / "params.yaml", overrides), churn)
    assert settings.promote.registered_model == "churn-v2" and settings.package.service_name == "churn-v2"
    assert settings.evaluate.thresholds == {"roc_auc": 0.8}
    assert settings.evaluate.slices.columns == ["gender"] and settings.evaluate.slices.min_size == 5


def test_the_bundled_contract_keeps_the_default_runs_names_and_gates():
    settings = resolve(load_settings(ROOT / "params.yaml"), load_contract(ROOT / "contracts" / "breast_cancer.yaml"))
    assert settings.promote.registered_model == settings.package.service_name == "breast-cancer-classifier"
    assert settings.evaluate.thresholds == {"roc_auc": 0.9, "f1": 0.85}
    assert settings.evaluate.slices.columns == ["mean radius"]
    assert [b["name"] for b in settings.evaluate.behaviour] == [
        "texture-noise-invariance", "concave-points-raise-malignancy", "textbook-cases"]  # fmt: skip
    assert default_model_name(ROOT / "params.yaml") == "breast-cancer-classifier"


def test_no_contract_and_no_model_name_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="promote.registered_model"):
        resolve(load_settings(ROOT / "params.yaml", ["validate.contract=null"]), None)


def test_a_bad_evaluation_section_names_its_key(churn):
    bad = dataclasses.replace(churn, evaluation={"slices": {"columns": ["gender"], "min_size": 0}})
    with pytest.raises(ConfigError, match="evaluation.slices"):
        resolve(load_settings(ROOT / "params.yaml"), bad)


@pytest.mark.parametrize(("name", "slug"), [("churn", "churn"), ("My Model!", "my-model"), ("__", "model")])
def test_service_names_are_slugs(name, slug):
    assert service_name_for(name) == slug
