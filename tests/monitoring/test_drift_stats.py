"""Drift of one column: the statistic chosen by type and reference size (Evidently's defaults), shifts
and changed category mixes flagged, equal distributions not, blanks counted."""

import json

import numpy as np
import pandas as pd
import pytest

from components.monitoring.drift_stats import BLANK, categories, choose_statistic, column_drift
from tests.messy import messy_frame

KINDS = {"gender": "categorical", "Contract": "categorical", "PaymentMethod": "categorical",
         "PaperlessBilling": "categorical", "tenure": "numeric", "MonthlyCharges": "numeric",
         "TotalCharges": "numeric", "SupportTickets": "numeric"}  # fmt: skip


@pytest.mark.parametrize(
    "kind,n_reference,n_distinct,expected",
    [
        ("numeric", 1000, 6, "ks_p_value"),
        ("numeric", 1000, 5, "chi2_p_value"),  # few values: tested as categories
        ("numeric", 1000, 2, "z_p_value"),
        ("categorical", 1000, 40, "chi2_p_value"),
        ("categorical", 10, 2, "z_p_value"),
        ("numeric", 1001, 6, "wasserstein_normed"),
        ("numeric", 1001, 5, "jensen_shannon"),
        ("categorical", 5000, 2, "jensen_shannon"),
        ("categorical", 5000, 300, "jensen_shannon"),
    ],
)
def test_the_statistic_follows_the_type_and_the_size_of_the_reference(kind, n_reference, n_distinct, expected):
    assert choose_statistic(kind, n_reference, n_distinct) == expected


@pytest.mark.parametrize(
    "rows,expected",
    [
        (600, {"gender": "z_p_value", "Contract": "chi2_p_value", "PaperlessBilling": "z_p_value",
               "tenure": "ks_p_value", "MonthlyCharges": "ks_p_value", "SupportTickets": "ks_p_value"}),
        (2400, {"gender": "jensen_shannon", "Contract": "jensen_shannon", "PaperlessBilling": "jensen_shannon",
                "tenure": "wasserstein_normed", "MonthlyCharges": "wasserstein_normed",
                "SupportTickets": "wasserstein_normed"}),
    ],
)  # fmt: skip
def test_a_users_export_gets_the_right_statistic_per_column_and_no_drift_from_itself(rows, expected):
    reference, current = messy_frame(rows, seed=1), messy_frame(rows, seed=2)  # same process, other draws
    results = {name: column_drift(reference[name], current[name], kind) for name, kind in KINDS.items()}
    assert {name: results[name]["statistic"] for name in expected} == expected
    assert not [name for name, r in results.items() if r["drifted"]]
    for name, r in results.items():
        assert r["column"] == name and r["kind"] == KINDS[name]
        assert (r["n_reference"], r["n_current"]) == (rows, rows)
        json.dumps(r, allow_nan=False)  # JSON as it is: no numpy types, no NaN
    assert results["TotalCharges"]["blank_reference"] == int(reference["TotalCharges"].isna().sum()) > 0


@pytest.mark.parametrize("rows", [600, 2400])
def test_a_shifted_numeric_column_and_a_changed_category_mix_are_flagged(rows):
    reference, current = messy_frame(rows, seed=1), messy_frame(rows, seed=2)
    current["MonthlyCharges"] = current["MonthlyCharges"] + 15  # about half a standard deviation
    current["Contract"] = np.where(np.arange(rows) % 4 == 0, "One year", "Month-to-month")  # the mix, not the levels
    current["PaperlessBilling"] = np.arange(rows) % 10 < 9  # 90% instead of 60%
    for name in ("MonthlyCharges", "Contract", "PaperlessBilling"):
        result = column_drift(reference[name], current[name], KINDS[name])
        assert result["drifted"], result
    assert not column_drift(reference["tenure"], current["tenure"], "numeric")["drifted"]


def test_identical_columns_are_not_drifted_whatever_the_statistic():
    frame = messy_frame(2400, seed=3)
    for n in (300, 2400):
        for name, kind in KINDS.items():
            r = column_drift(frame[name][:n], frame[name][:n], kind)
            assert not r["drifted"] and r["value"] == (1.0 if r["statistic"].endswith("p_value") else 0.0), r


def test_blanks_are_a_category_of_their_own_and_dropped_from_numbers():
    assert list(categories(pd.Series(["a", None, "", "  ", np.nan, "b"]))) == ["a", BLANK, BLANK, BLANK, BLANK, "b"]
    rng = np.random.default_rng(0)
    colours = pd.Series(rng.choice(["red", "green", "blue"], 800), name="colour")
    blanked = colours.mask(rng.random(800) < 0.4)  # 40% of the rows arrive blank
    r = column_drift(colours, blanked, "categorical")
    assert r["drifted"] and r["blank_reference"] == 0 and r["blank_current"] == int(blanked.isna().sum())
    # numbers: blanks are left out of the test, so the same values with holes are no drift, and are counted
    values = pd.Series(rng.normal(50, 10, 3000), name="amount")
    holes = values.mask(rng.random(3000) < 0.3).astype("Float64")  # a nullable column, as pandas reads Int/Float
    r = column_drift(values, holes, "numeric")
    assert not r["drifted"] and r["blank_current"] == int(holes.isna().sum()) and r["n_current"] == 3000
    # a numeric column that stopped arriving is drift: compared by how often it is blank
    r = column_drift(values, pd.Series([np.nan] * 500, name="amount"), "numeric")
    assert r["drifted"] and "blank" in r["note"]
    # text in a numeric column counts as blank, inf too
    r = column_drift(pd.Series(["1.5", "x", "2.5", "inf"] * 100), pd.Series([1.5, 2.5] * 200), "numeric")
    assert r["blank_reference"] == 200 and not r["drifted"]


def test_nothing_to_compare_and_unknown_kinds():
    r = column_drift(pd.Series([1.0, 2.0], name="x"), pd.Series([], dtype=float, name="x"), "numeric")
    assert r["value"] is None and r["drifted"] is False and "no rows in the current data" in r["note"]
    with pytest.raises(ValueError, match="'x'.*'text'"):
        column_drift(pd.Series([1], name="x"), pd.Series([1], name="x"), "text")
