"""The one boundary between data and models: every dtype a contract allows gives the same prediction
whichever way it arrives (pandas category, string, boolean, nullable integer, JSON values)."""

import numpy as np
import pandas as pd
import pytest

from components.model.trained import NUMBER, TEXT, canonical_frame, feature_kinds
from components.training.families import train_candidate
from tests.messy import messy_frame

FEATURES = ["gender", "Contract", "PaymentMethod", "PaperlessBilling", "tenure", "MonthlyCharges", "TotalCharges",
            "SupportTickets"]  # fmt: skip


@pytest.fixture(scope="module")
def typed():
    """The export as validation hands it on: categories, a bool, an int, floats with NaN, an Int64 with NA."""
    frame = messy_frame(rows=600, seed=3)
    cats = {c: "category" for c in ("gender", "Contract", "PaymentMethod")}
    return frame.astype(cats)


def _as_json(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows as the service builds them from JSON: object columns of str/bool/None, floats."""
    out = {}
    for col in FEATURES:
        values = [None if pd.isna(v) else v for v in frame[col].astype(object).tolist()]
        kind = feature_kinds(frame[[col]])[col]
        out[col] = (
            np.array([np.nan if v is None else float(v) for v in values])
            if kind == NUMBER
            else np.array(values, dtype=object)
        )
    return pd.DataFrame(out, index=frame.index)


def test_kinds_split_numbers_from_everything_else(typed):
    kinds = feature_kinds(typed[FEATURES])
    assert kinds["SupportTickets"] == kinds["tenure"] == kinds["TotalCharges"] == NUMBER  # Int64 with NA too
    assert kinds["PaperlessBilling"] == kinds["Contract"] == TEXT  # a boolean is two categories, not a scale


def test_canonical_frame_has_two_representations_only(typed):
    out = canonical_frame(typed, feature_kinds(typed[FEATURES]), keep_categorical=False)
    assert list(out.columns) == FEATURES
    assert all(out[c].dtype == np.float64 for c in ("tenure", "SupportTickets", "TotalCharges"))
    assert out["SupportTickets"].isna().sum() == typed["SupportTickets"].isna().sum()
    # text, never a pandas category: MLflow's schema enforcement refuses categories for string inputs
    assert pd.api.types.is_string_dtype(out["PaperlessBilling"]) and set(out["PaperlessBilling"]) == {"True", "False"}
    assert pd.api.types.is_string_dtype(out["Contract"]) and not isinstance(out["Contract"].dtype, pd.CategoricalDtype)
    assert set(out["Contract"]) <= set(typed["Contract"].cat.categories)


def test_missing_feature_is_named(typed):
    with pytest.raises(KeyError, match="SupportTickets"):
        canonical_frame(typed.drop(columns=["SupportTickets"]), feature_kinds(typed[FEATURES]))


@pytest.mark.parametrize("family", ["sklearn_logreg", "sklearn_hgb", "torch_mlp"])
def test_every_family_predicts_the_same_from_every_representation(typed, family):
    params = {"sklearn_logreg": {"C": 1.0, "max_iter": 500},
              "sklearn_hgb": {"learning_rate": 0.1, "max_iter": 30, "max_leaf_nodes": 15},
              "torch_mlp": {"epochs": 3, "lr": 0.01, "hidden": [8], "batch_size": 64}}[family]  # fmt: skip
    train, rows = typed.iloc[:500], typed.iloc[500:]
    model = train_candidate("m", family, params, train[FEATURES], train["Churn"], seed=0)
    assert model.classes == ["No", "Yes"]
    reference = model.predict_frame(rows[FEATURES])
    as_text = rows[FEATURES].astype({c: "str" for c in ("gender", "Contract", "PaymentMethod")})
    as_model_input = canonical_frame(rows[FEATURES], model.kinds, keep_categorical=False)
    for variant in (as_text, _as_json(rows), as_model_input, rows[FEATURES[::-1]]):
        out = model.predict_frame(variant)
        assert list(out["label"]) == list(reference["label"])
        np.testing.assert_array_equal(out["probability"].to_numpy(), reference["probability"].to_numpy())


@pytest.mark.parametrize(
    ("task", "labels", "message"),
    [
        ("binary", ["low", "mid", "high"], r"binary classification needs exactly two target labels, found \['high'"),
        ("binary", ["No"], r"exactly two target labels, found \['No'\]"),
        ("multiclass", ["No", "Yes"], r"multiclass classification needs at least three target labels.*task binary"),
    ],
)  # fmt: skip
def test_a_target_with_the_wrong_number_of_labels_for_its_task_is_refused(task, labels, message):
    X = pd.DataFrame({"x": np.arange(12.0)})
    y = pd.Series([labels[i % len(labels)] for i in range(12)])
    with pytest.raises(ValueError, match=message):
        train_candidate("m", "sklearn_logreg", {"C": 1.0, "max_iter": 100}, X, y, seed=0, task=task)


def test_a_saved_model_predicts_what_it_predicted_before_saving(tmp_path):
    """model.json sorts its keys; the loaded model must still see its columns in training order
    (the numpy fast path of all-numeric models reads them by position)."""
    from components.data.dataset import read_source
    from components.model.files import load_model, save_model

    frame = read_source("sklearn:breast_cancer")
    X, y = frame.drop(columns=["target"]).iloc[:400], frame["target"].iloc[:400]
    assert list(X.columns) != sorted(X.columns)
    model = train_candidate("m", "sklearn_logreg", {"C": 1.0, "max_iter": 1000}, X, y, seed=0)
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert list(loaded.kinds) == list(X.columns)
    rows = frame.drop(columns=["target"]).iloc[400:]
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
