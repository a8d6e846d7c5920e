"""Drift of one column: the statistic chosen by the column's type and the reference's size.

The choice follows Evidently's documented defaults (Evidently itself does not import on pandas 3):

| reference values | column                                   | statistic                          | drifted when |
| ---------------- | ---------------------------------------- | ---------------------------------- | ------------ |
| <= 1000          | numeric, > 5 distinct values             | two-sample Kolmogorov-Smirnov      | p < 0.05     |
| <= 1000          | categorical (or numeric, <= 5 values)    | chi-square (homogeneity, 2 x k)    | p < 0.05     |
| <= 1000          | exactly two categories                   | proportion difference Z-test       | p < 0.05     |
| > 1000           | numeric, > 5 distinct values             | Wasserstein distance / ref std     | >= 0.1       |
| > 1000           | categorical (or numeric, <= 5 values)    | Jensen-Shannon distance (base e)   | >= 0.1       |

Distinct values are counted over both sides together. Blanks (missing values, empty or blank
strings) are a category of their own in categorical columns; numeric columns drop them (and
inf) before testing and count them in the result. A numeric column with no value on one side
is compared by its blank share instead (blank vs filled, with the categorical rules), since a
feature that stopped arriving is drift whatever its values were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)
SMALL_REFERENCE = 1000  # up to this many reference values: tests with p-values; above: distances
FEW_VALUES = 5  # a numeric column with this many distinct values or fewer is tested as categorical
P_VALUE_THRESHOLD = 0.05  # p-value statistics: drifted below this
DISTANCE_THRESHOLD = 0.1  # distance statistics: drifted at or above this
MIN_STD = 0.001  # Evidently's floor for the reference std that norms the Wasserstein distance
BLANK = "<blank>"

# statistic -> (what it is, True when a value below the threshold means drift)
STATISTICS: dict[str, tuple[str, bool]] = {
    "ks_p_value": ("two-sample Kolmogorov-Smirnov test, p-value", True),
    "chi2_p_value": ("chi-square test of homogeneity, p-value", True),
    "z_p_value": ("proportion difference Z-test, p-value", True),
    "wasserstein_normed": ("Wasserstein distance divided by the reference's standard deviation", False),
    "jensen_shannon": ("Jensen-Shannon distance of the category shares (natural log)", False),
}


def choose_statistic(kind: str, n_reference: int, n_distinct: int) -> str:
    """The statistic for a column of ``kind`` with ``n_reference`` reference values and ``n_distinct``
    distinct values over both sides (Evidently's defaults)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    continuous = kind == NUMERIC and n_distinct > FEW_VALUES
    if n_reference <= SMALL_REFERENCE:
        if continuous:
            return "ks_p_value"
        return "z_p_value" if n_distinct == 2 else "chi2_p_value"
    return "wasserstein_normed" if continuous else "jensen_shannon"


def is_drifted(statistic: str, value: float) -> bool:
    lower_is_drift = STATISTICS[statistic][1]
    return value < P_VALUE_THRESHOLD if lower_is_drift else value >= DISTANCE_THRESHOLD


def threshold_of(statistic: str) -> float:
    return P_VALUE_THRESHOLD if STATISTICS[statistic][1] else DISTANCE_THRESHOLD


def categories(values: pd.Series) -> pd.Series:
    """``values`` as category strings, blanks (missing, empty or blank strings) as ``<blank>``."""
    text = values.astype("object").astype("string")  # object first: category and bool columns alike
    blank = text.isna() | (text.str.strip() == "")
    return text.where(~blank.fillna(True), BLANK).astype("object")


def _as_floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def numbers(values: pd.Series) -> tuple[np.ndarray, int]:
    """The finite numbers of ``values`` and how many were blank (missing, unparsable or infinite)."""
    array = _as_floats(values)
    finite = np.isfinite(array)
    return array[finite], int((~finite).sum())


def _counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts per category on each side, over the union of categories (sorted, for a stable order)."""
    ref, cur = reference.value_counts(), current.value_counts()
    keys = sorted(set(ref.index) | set(cur.index), key=str)
    return (ref.reindex(keys, fill_value=0).to_numpy(dtype="float64"),
            cur.reindex(keys, fill_value=0).to_numpy(dtype="float64"), [str(k) for k in keys])  # fmt: skip


def chi2_p_value(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Whether both samples come from one category distribution (2 x k contingency table)."""
    if len(ref_counts) < 2:
        return 1.0
    return float(stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False).pvalue)


def z_p_value(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-sided p-value of the difference between the shares of the first of two categories."""
    n1, n2 = ref_counts.sum(), cur_counts.sum()
    p1, p2 = ref_counts[0] / n1, cur_counts[0] / n2
    pooled = (ref_counts[0] + cur_counts[0]) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p2) / se))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance of the two category shares (0 equal, sqrt(ln 2) ~ 0.83 disjoint)."""
    value = distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    return 0.0 if not np.isfinite(value) else float(value)


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """Earth mover's distance in units of the reference's standard deviation."""
    return float(stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), MIN_STD))


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).pvalue)


def _categorical_value(statistic: str, ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    if statistic == "z_p_value":
        return z_p_value(ref_counts, cur_counts)
    if statistic == "chi2_p_value":
        return chi2_p_value(ref_counts, cur_counts)
    return jensen_shannon(ref_counts, cur_counts)


def _result(column: str, kind: str, statistic: str, value: float, n_ref: int, n_cur: int, **extra: Any) -> dict:
    return {"column": column, "kind": kind, "statistic": statistic, "value": float(value),
            "threshold": threshold_of(statistic), "drifted": bool(is_drifted(statistic, value)),
            "n_reference": int(n_ref), "n_current": int(n_cur), **extra}  # fmt: skip


def column_drift(reference: pd.Series, current: pd.Series, kind: str) -> dict[str, Any]:
    """Drift of ``current`` against ``reference`` for a column of ``kind`` ("numeric" or "categorical").

    Returns {"column", "kind", "statistic", "value", "threshold", "drifted", "n_reference",
    "n_current"} plus ``blank_reference``/``blank_current`` (blank rows on each side) and, for a
    comparison that could not use the values themselves, a ``note``. ``n_*`` count every row given.
    """
    if kind not in KINDS:
        raise ValueError(f"column {reference.name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    name = str(reference.name if reference.name is not None else current.name)
    n_ref, n_cur = len(reference), len(current)
    if not n_ref or not n_cur:
        side = "reference" if not n_ref else "current data"
        note = f"no rows in the {side}: nothing to compare"
        return {"column": name, "kind": kind, "statistic": "none", "value": None, "threshold": None, "drifted": False,
                "n_reference": n_ref, "n_current": n_cur, "note": note}  # fmt: skip
    if kind == NUMERIC:
        ref_values, ref_blank = numbers(reference)
        cur_values, cur_blank = numbers(current)
        blanks = {"blank_reference": ref_blank, "blank_current": cur_blank}
        if len(ref_values) and len(cur_values):
            n_distinct = len(np.unique(np.concatenate([ref_values, cur_values])))
            statistic = choose_statistic(NUMERIC, len(ref_values), n_distinct)
            if statistic == "ks_p_value":
                value = ks_p_value(ref_values, cur_values)
            elif statistic == "wasserstein_normed":
                value = wasserstein_normed(ref_values, cur_values)
            else:  # few distinct numbers: their shares, as categories
                ref_counts, cur_counts, _ = _counts(pd.Series(ref_values), pd.Series(cur_values))
                value = _categorical_value(statistic, ref_counts, cur_counts)
            return _result(name, kind, statistic, value, n_ref, n_cur, **blanks)
        # no value on one side: compare how often the column is blank
        ref_cats, cur_cats = (pd.Series(np.where(np.isfinite(_as_floats(s)), "filled", BLANK))
                              for s in (reference, current))  # fmt: skip
        extra = {**blanks, "note": "no values on one side: compared by blank vs filled rows"}
    else:
        ref_cats, cur_cats = categories(reference), categories(current)
        extra = {"blank_reference": int((ref_cats == BLANK).sum()), "blank_current": int((cur_cats == BLANK).sum())}
    ref_counts, cur_counts, keys = _counts(ref_cats, cur_cats)
    statistic = choose_statistic(CATEGORICAL, n_ref, len(keys))
    return _result(name, kind, statistic, _categorical_value(statistic, ref_counts, cur_counts), n_ref, n_cur,
                   **extra)  # fmt: skip
