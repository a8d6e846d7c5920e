"""Small learnable frames for each task, shared by the training tests."""

import numpy as np
import pandas as pd

MULTICLASS_LABELS = ["high", "low", "mid"]  # sorted: the class order of every score column


def make_frame(task: str, n: int, seed: int, *, numeric_only: bool = False) -> pd.DataFrame:
    """A learnable ``target`` from two numbers and a category with blanks (missing and empty strings).

    Regression targets sit far from 0 and 1 so that a model answering in standardised units fails.
    """
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    signal = x1 - 0.5 * x2 + (0 if numeric_only else 1.5 * (colour == "red"))
    colour[rng.random(n) < 0.08] = None
    colour[rng.random(n) < 0.05] = ""
    noisy = signal + rng.normal(scale=0.3, size=n)
    if task == "binary":
        y = np.where(noisy > 0.5, "yes", "no")
    elif task == "multiclass":
        y = np.select([noisy < 0, noisy < 1.2], ["low", "mid"], "high")
    else:
        y = 1000 + 50 * noisy
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": pd.Categorical(colour), "target": y})
    if numeric_only:
        frame = frame.drop(columns="colour").assign(x2=frame["x2"].mask(rng.random(n) < 0.1))
    return frame
