from pathlib import Path

import pytest
import yaml

from components.config import (
    ConfigError,
    apply_overrides,
    load_raw,
    load_settings,
    params_hash,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw():
    return load_raw(ROOT / "params.yaml")


def test_project_params_load_into_typed_settings(raw):
    s = parse_settings(raw)
    assert s.data.target == "target"
    assert set(s.train.candidates) == {"logreg", "hgb", "mlp"}
    assert s.train.candidates["mlp"].hidden == [64, 32]
    assert s.validate_.min_rows >= 1


def test_missing_key_is_named(raw):
    del raw["train"]["candidates"]["hgb"]["learning_rate"]
    with pytest.raises(ConfigError, match=r"missing key 'train\.candidates\.hgb.*learning_rate'"):
        parse_settings(raw)


def test_wrong_type_is_named(raw):
    raw["data"]["seed"] = "forty-two"
    with pytest.raises(ConfigError, match=r"key 'data\.seed'"):
        parse_settings(raw)


def test_unknown_family_lists_known_ones(raw):
    raw["train"]["candidates"]["hgb"]["family"] = "xgboost"
    with pytest.raises(ConfigError, match="unknown family 'xgboost'.*sklearn_logreg, sklearn_hgb, torch_mlp"):
        parse_settings(raw)


def test_unknown_section_key_is_an_error(raw):
    raw["evaluate"]["primary_metrc"] = "f1"
    with pytest.raises(ConfigError, match=r"unknown key 'evaluate\.primary_metrc'"):
        parse_settings(raw)


def test_overrides_parse_yaml_values_and_address_candidates(raw):
    out = apply_overrides(
        raw,
        [
            "train.candidates.hgb.learning_rate=0.05",
            "train.candidates.mlp.hidden=[8]",
            "train.candidates.logreg.enabled=false",
        ],
    )
    s = parse_settings(out)
    assert s.train.candidates["hgb"].learning_rate == 0.05
    assert s.train.candidates["mlp"].hidden == [8]
    assert "logreg" not in s.train.enabled()
    assert raw["train"]["candidates"]["hgb"]["learning_rate"] == 0.1  # input not mutated


@pytest.mark.parametrize("bad", ["train.candidates.hgb.learning_rat=0.1", "nosuch.key=1", "data=1=2x"])
def test_unknown_override_key_names_it(raw, bad):
    with pytest.raises(ConfigError, match="unknown params key|is a section"):
        apply_overrides(raw, [bad])


def test_override_without_equals_is_rejected(raw):
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(raw, ["train.seed"])


def test_params_hash_ignores_key_order():
    assert params_hash({"a": 1, "b": {"c": 2}}) == params_hash({"b": {"c": 2}, "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})


def test_load_settings_reports_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_load_settings_with_overrides(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_settings(path, ["data.seed=7"]).data.seed == 7
