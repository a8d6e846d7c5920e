"""Reference frames for the multiclass and regression tests, from scikit-learn's bundled data (no network).

Both carry a text category with blanks, as users' exports do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CULTIVARS = {0: "barolo", 1: "grignolino", 2: "barbera"}


def _with_region(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "centre", "south"], len(frame)).astype(object)
    region[rng.random(len(frame)) < 0.08] = None  # blanks, about 8%
    return frame.assign(region=region)


def wine_frame(seed: int = 0) -> pd.DataFrame:
    """sklearn's wine (178 rows, 13 numeric features, 3 classes) with the class as a cultivar name."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = frame.pop("target").map(CULTIVARS)
    return _with_region(frame, seed)


def diabetes_frame(seed: int = 0) -> pd.DataFrame:
    """sklearn's diabetes, unscaled (442 rows): ``progression`` a year on, 214 distinct whole numbers."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    return _with_region(frame, seed)
