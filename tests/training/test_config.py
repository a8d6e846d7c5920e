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

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw():
    return load_raw(ROOT / "params.yaml")


def test_project_params_load_into_typed_settings(raw):
    s = parse_settings(raw)
    assert s.data.target == "target"
    assert set(s.train.candidates) == {"logreg", "hgb", "ridge", "rf", "lgbm", "mlp"}
    assert s.train.candidates["mlp"].hidden == [64, 32]
    assert s.train.candidates["logreg"].tasks == ["binary", "multiclass"] and s.train.candidates["hgb"].tasks is None
    assert s.evaluate.primary_metric is None  # the task's default, filled in by components.dataset_settings
    assert s.validate_.min_rows >= 1


def test_primary_metric_must_be_a_known_metric_of_some_task(raw):
    raw["evaluate"]["primary_metric"] = "rmse"  # a regression metric: whether it fits the task is checked on resolve
    assert parse_settings(raw).evaluate.primary_metric == "rmse"
    raw["evaluate"]["primary_metric"] = "auc"
    with pytest.raises(ConfigError, match=r"key 'evaluate\.primary_metric'"):
        parse_settings(raw)


def test_candidate_tasks_must_be_known_tasks(raw):
    raw["train"]["candidates"]["hgb"]["tasks"] = ["ranking"]
    with pytest.raises(ConfigError, match=r"key 'train\.candidates\.hgb\.tasks\.0'"):
        parse_settings(raw)


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


def test_parallel_and_search_sections_default_when_absent(raw):
    raw["train"].pop("parallel", None)
    raw["train"].pop("search", None)
    train = parse_settings(raw).train
    assert (train.parallel.engine, train.parallel.address, train.parallel.n_workers) == ("local", None, 2)
    assert (train.search.n_trials, train.search.batch_size) == (0, 2)


def test_parallel_search_and_search_spaces_are_accepted(raw):
    raw["train"]["parallel"] = {"engine": "dask", "address": "tcp://scheduler:8786", "n_workers": 4}
    raw["train"]["search"] = {"n_trials": 8, "batch_size": 4, "seed": 1}
    raw["train"]["candidates"]["hgb"]["search"] = {
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "max_leaf_nodes": {"low": 8, "high": 64, "type": "int"},
    }
    raw["train"]["candidates"]["mlp"]["early_stopping_patience"] = 5
    raw["train"]["candidates"]["mlp"]["search"] = {"hidden": {"choices": [[64, 32], [32]]}}
    raw["train"]["candidates"]["logreg"].pop("search", None)
    train = parse_settings(raw).train
    assert train.parallel.address == "tcp://scheduler:8786" and train.search.n_trials == 8
    space = train.candidates["hgb"].search
    assert space["learning_rate"].log and space["max_leaf_nodes"].type == "int"
    assert train.candidates["mlp"].early_stopping_patience == 5
    assert train.candidates["mlp"].search["hidden"].choices == [[64, 32], [32]]
    assert train.candidates["logreg"].search is None


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (
            {"learnin_rate": {"low": 0.01, "high": 0.3}},
            r"train\.candidates\.hgb\.search: 'learnin_rate' is not a parameter of sklearn_hgb "
            r"\(known: learning_rate, max_iter, max_leaf_nodes\)",
        ),
        ({"enabled": {"choices": [True]}}, r"'enabled' is not a parameter of sklearn_hgb"),
        ({"learning_rate": {"low": 0.3, "high": 0.3}}, r"'train\.candidates\.hgb\.search\.learning_rate'.*below"),
        ({"learning_rate": {"low": 0, "high": 0.3, "log": True}}, r"search\.learning_rate'.*log: true needs low > 0"),
        ({"learning_rate": {"choices": []}}, r"search\.learning_rate'.*at least one value"),
        ({"learning_rate": {"high": 0.3}}, r"search\.learning_rate'.*needs low and high, or choices"),
        ({"max_leaf_nodes": {"low": 8, "high": 64}}, r"search\.max_leaf_nodes: .*integer parameter; add type: int"),
        ({"max_leaf_nodes": {"low": 1, "high": 64, "type": "int"}}, r"search\.max_leaf_nodes: 1 is not a valid"),
        ({"learning_rate": {"choices": ["fast"]}}, r"search\.learning_rate: 'fast' is not a valid learning_rate"),
    ],
)
def test_bad_search_spaces_name_the_key(raw, search, message):
    raw["train"]["candidates"]["hgb"]["search"] = search
    with pytest.raises(ConfigError, match=message):
        parse_settings(raw)


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("parallel", {"engine": "ray"}, "train.parallel.engine"),
        ("parallel", {"n_workers": 0}, "train.parallel.n_workers"),
        ("search", {"n_trials": -1}, "train.search.n_trials"),
        ("search", {"batch_size": 0}, "train.search.batch_size"),
    ],
)
def test_bad_parallel_and_search_settings_name_the_key(raw, key, value, where):
    raw["train"][key] = value
    with pytest.raises(ConfigError, match=f"key '{where}'"):
        parse_settings(raw)


def test_patience_must_be_positive(raw):
    raw["train"]["candidates"]["mlp"]["early_stopping_patience"] = 0
    with pytest.raises(ConfigError, match=r"key 'train\.candidates\.mlp\.early_stopping_patience'"):
        parse_settings(raw)


def test_an_optional_section_can_be_switched_off_with_null_and_a_required_one_cannot(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    assert load_settings(path, ["train.candidates.logreg.search=null"]).train.candidates["logreg"].search is None
    with pytest.raises(ConfigError, match="'data'"):
        load_settings(path, ["data=null"])
