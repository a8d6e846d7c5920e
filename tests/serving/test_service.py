"""Unit tests of what the service runs per request: the request schema and the model's fast path
(no server, no bentoml import)."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from components.data.contract import ColumnRule, load_contract
from components.model.fast_preprocessing import fast_preprocessor
from components.model.trained import TrainedModel
from components.serving.request_schema import (
    MAX_ABS_NUMBER,
    RequestError,
    RequestValidator,
    frame_from_columns,
    schema_from_contract,
    validate_columns,
    validate_records,
)
from components.training.features import build_preprocessor

ROOT = Path(__file__).resolve().parents[2]


def _by_name(schema):
    return {f["name"]: f for f in schema["features"]}


def test_schema_from_contract_keeps_blocking_rules_only():
    contract = SimpleNamespace(
        columns=(
            ColumnRule(name="age", dtype="int", min=0, max=120),
            ColumnRule(name="income", dtype="float", nullable=True, min=0, max=1e6, severity={"range": "warn"}),
            ColumnRule(name="colour", dtype="category", allowed=["red", "blue"]),
            ColumnRule(name="city", dtype="string", allowed=["x"], on_unseen="warn"),
            ColumnRule(name="member", dtype="bool"),
            ColumnRule(name="id", dtype="string", feature=False),
        )
    )
    spec = _by_name(schema_from_contract(contract, ["age", "income", "colour", "city", "member"]))
    assert list(spec) == ["age", "income", "colour", "city", "member"]  # feature order, not contract order
    assert (spec["age"]["dtype"], spec["age"]["min"], spec["age"]["max"]) == ("int", 0.0, 120.0)
    assert spec["income"]["nullable"] and spec["income"]["min"] is None  # range only warns
    assert spec["colour"] == {
        "name": "colour",
        "dtype": "string",
        "nullable": False,
        "min": None,
        "max": None,
        "allowed": ["red", "blue"],
    }
    assert spec["city"]["allowed"] is None  # on_unseen: warn
    assert spec["member"]["dtype"] == "bool"


def test_schema_from_contract_duck_types_plain_objects():
    rule = SimpleNamespace(name="x", dtype="float", min=1.0, max=2.0)  # no nullable, no severity at all
    spec = _by_name(schema_from_contract(SimpleNamespace(columns=[rule]), ["x"]))["x"]
    assert (spec["nullable"], spec["min"], spec["max"], spec["allowed"]) == (False, 1.0, 2.0, None)
    warn = SimpleNamespace(name="x", dtype="float", min=1.0, max=2.0, severity="warn")
    assert _by_name(schema_from_contract(SimpleNamespace(columns=[warn]), ["x"]))["x"]["min"] is None


def test_schema_from_contract_names_a_feature_the_contract_lacks():
    with pytest.raises(ValueError, match="'missing' has no rule"):
        schema_from_contract(SimpleNamespace(columns=[ColumnRule(name="a")]), ["a", "missing"])


def test_schema_from_the_project_contract_enforces_its_bounds():
    contract = load_contract(ROOT / "contracts" / "breast_cancer.yaml")
    features = [c.name for c in contract.columns if c.feature and c.name != contract.target]
    schema = schema_from_contract(contract, features)
    radius = _by_name(schema)["mean radius"]
    assert radius["min"] is not None and radius["max"] is not None
    good = {f["name"]: (f["min"] + f["max"]) / 2 for f in schema["features"]}
    assert validate_records([good], schema, max_batch=1).shape == (1, len(features))
    with pytest.raises(RequestError, match="outside") as err:
        validate_records([{**good, "mean radius": radius["max"] + 1}], schema, max_batch=1)
    assert err.value.field == "mean radius"


SCHEMA = {
    "features": [
        {"name": "n", "dtype": "int", "nullable": False, "min": None, "max": None, "allowed": None},
        {"name": "x", "dtype": "float", "nullable": True, "min": -5, "max": 5, "allowed": None},
        {"name": "flag", "dtype": "bool", "nullable": False, "min": None, "max": None, "allowed": None},
        {"name": "s", "dtype": "string", "nullable": True, "min": None, "max": None, "allowed": None},
    ]
}
GOOD = {"n": 3, "x": 1.5, "flag": True, "s": "a"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"n": 10**400}, "n", "too large"),
        ({"n": 2**62}, "n", "magnitude"),
        ({"x": -1e300}, "x", "magnitude"),
        ({"x": 6}, "x", "outside"),
        ({"flag": 1}, "flag", "true or false"),
        ({"flag": None}, "flag", "null"),
        ({"s": {"nested": 1}}, "s", "expected a string"),
        ({"x": [1.0]}, "x", "expected a number"),
        ({"n": "3"}, "n", "expected a number"),
    ],
)
def test_bad_values_are_named_never_crash(change, field, message):
    with pytest.raises(RequestError, match=message) as err:
        validate_columns([GOOD, {**GOOD, **change}], SCHEMA, max_batch=10)
    assert err.value.field == field and "records[1]" in str(err.value)


def test_unicode_and_long_unknown_keys_are_reported_truncated():
    with pytest.raises(RequestError, match="unknown field") as err:
        validate_columns([{**GOOD, "ключ" * 100: 1}], SCHEMA, max_batch=10)
    assert err.value.field.startswith("ключ") and len(err.value.field) <= 80


def test_nulls_where_allowed_and_types_of_the_frame():
    frame = validate_records([GOOD, {**GOOD, "x": None, "s": None}], SCHEMA, max_batch=10)
    assert list(frame.columns) == ["n", "x", "flag", "s"]
    assert frame["n"].dtype == np.int64 and math.isnan(frame["x"][1])
    assert frame["flag"].tolist() == [True, True] and pd.isna(frame["s"][1])


def test_frame_from_columns_handles_numeric_only_and_text_only():
    numeric = frame_from_columns({"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])})
    assert numeric.to_dict("list") == {"a": [1.0, 2.0], "b": [3.0, 4.0]}
    text = frame_from_columns({"s": np.array(["p", "q"], dtype=object)})
    assert text["s"].tolist() == ["p", "q"] and len(text) == 2


def test_fast_path_and_slow_path_agree():
    rng = np.random.default_rng(0)
    records = [
        {"n": int(i), "x": float(v), "flag": bool(i % 2), "s": "z"} for i, v in enumerate(rng.uniform(-5, 5, 300))
    ]
    fast = validate_records(records, SCHEMA, max_batch=300)
    one_by_one = pd.concat([validate_records([r], SCHEMA, max_batch=1) for r in records], ignore_index=True)
    pd.testing.assert_frame_equal(fast, one_by_one, check_dtype=False)
    assert MAX_ABS_NUMBER < 2**53  # every accepted int fits exactly in float64 and int64


def test_a_compiled_validator_answers_like_validate_columns():
    validator = RequestValidator(SCHEMA, max_batch=10)
    records = [GOOD, {**GOOD, "x": None, "s": None}]
    got, want = validator(records), validate_columns(records, SCHEMA, max_batch=10)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    with pytest.raises(RequestError, match="outside") as err:
        validator([GOOD, {**GOOD, "x": 6}])
    assert err.value.field == "x" and "records[1]" in str(err.value)
    floats = {"features": [{"name": n, "dtype": "float", "nullable": False} for n in ("a", "b")]}
    frame = validate_records([{"b": 1.0, "a": 2.0}], floats, max_batch=1)
    assert frame.to_dict("list") == {"a": [2.0], "b": [1.0]}


# The served model's numpy preprocessing (TrainedModel's fast path) against sklearn itself.


def _numeric_frame(n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(5, 2, n), "b": rng.normal(size=n), "c": rng.uniform(0, 100, n)})
    y = (X["a"] + X["b"] > 5).to_numpy().astype(int)
    return X.mask(rng.random(X.shape) < 0.1), y  # missing values everywhere


def _model(family: str, X: pd.DataFrame, y: np.ndarray) -> TrainedModel:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    prep = build_preprocessor(X)
    common = {"name": "m", "family": family, "params": {}, "feature_columns": list(X.columns), "classes": [0, 1]}
    if family == "torch_mlp":
        import torch

        from components.model.torch_net import build_mlp

        prep.fit(X)
        torch.manual_seed(0)
        net = build_mlp(prep.transform(X).shape[1], [8]).eval()
        return TrainedModel(**common, estimator=net, preprocessor=prep)
    clf = LogisticRegression() if family == "sklearn_logreg" else HistGradientBoostingClassifier(max_iter=10)
    return TrainedModel(**common, estimator=Pipeline([("prep", prep), ("model", clf)]).fit(X, y))


def _reference(model: TrainedModel, X: pd.DataFrame) -> np.ndarray:
    if model.family == "torch_mlp":
        from components.model.torch_net import mlp_proba

        return mlp_proba(model.estimator, model.preprocessor.transform(X))
    return model.estimator.predict_proba(X)[:, 1]


@pytest.mark.parametrize("family", ["sklearn_logreg", "sklearn_hgb", "torch_mlp"])
def test_fast_path_gives_sklearns_answers(family):
    X, y = _numeric_frame()
    model = _model(family, X, y)
    assert model._fast is not None  # impute + scale compiled to numpy
    expected = _reference(model, X)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=0, atol=1e-12)
    # The 1-row case the service mostly sees, against the reference on that 1 row: a float32 net's forward
    # pass over one row and over many may round differently (by 3e-8 for about 1 random init in 20).
    one = _reference(model, X.head(1))
    labels, proba = model.predict_arrays(X.head(1))
    assert proba.dtype == np.float64 and abs(proba[0] - one[0]) <= 1e-12
    assert labels.tolist() == [int(one[0] >= 0.5)]
    out = model.predict_frame(X.iloc[5:9])
    assert out.index.tolist() == [5, 6, 7, 8] and out["label"].tolist() == (expected[5:9] >= 0.5).astype(int).tolist()


def test_fast_path_leaves_odd_inputs_to_sklearn():
    X, y = _numeric_frame()
    model = _model("sklearn_logreg", X, y)
    expected = _reference(model, X)
    shuffled = X[["c", "a", "b"]].assign(extra="ignored")  # other order, an extra column
    np.testing.assert_allclose(model.predict_proba(shuffled), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        model.predict_proba(X.astype(np.float32)), _reference(model, X.astype(np.float32)), rtol=0, atol=1e-12
    )
    ints = X.fillna(1).round().astype(np.int64)
    np.testing.assert_allclose(model.predict_proba(ints), _reference(model, ints), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="infinity"):  # sklearn's own refusal, as before
        model.predict_proba(X.assign(a=np.inf))
    with pytest.raises(KeyError, match="missing feature columns: b"):
        model.predict_proba(X.drop(columns="b"))


def test_pipelines_numpy_cannot_reproduce_stay_on_sklearn():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X, y = _numeric_frame()
    mixed = X.assign(colour=np.where(y == 1, "red", "blue"))
    model = _model("sklearn_logreg", mixed, y)  # one-hot group: not compiled
    assert model._fast is None
    np.testing.assert_array_equal(model.predict_proba(mixed), model.estimator.predict_proba(mixed)[:, 1])
    for transformer in (FunctionTransformer(np.log1p), SimpleImputer(add_indicator=True)):
        ct = ColumnTransformer([("t", transformer, ["c"])]).fit(X.abs())
        assert fast_preprocessor(ct) is None
    scale_only = ColumnTransformer([("t", StandardScaler(with_mean=False), ["a", "c"])]).fit(X)
    probe = X.head(20).to_numpy()  # with missing values: the scaler passes NaN through
    np.testing.assert_array_equal(fast_preprocessor(scale_only).transform(probe), scale_only.transform(X.head(20)))
    empty = ColumnTransformer([("t", SimpleImputer(), ["a", "b"])])
    with pytest.warns(UserWarning, match="Skipping features"):
        assert fast_preprocessor(empty.fit(X.assign(b=np.nan))) is None  # sklearn drops the column
