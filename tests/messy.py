"""A generated customer export that looks like users' data, not like the bundled table.

Categorical text columns (one with a rare level), an id column, blanks in numeric columns, a
boolean column and string labels (`Yes`/`No`), with a real signal so a model can beat the prior.
Written as a CSV the way a CRM exports it: blanks as empty fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CONTRACTS = ["Month-to-month", "One year", "Two year"]
PAYMENTS = ["Electronic check", "Bank transfer", "Credit card", "Mailed check (paper)"]  # the last one is rare


def messy_frame(rows: int = 2400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(CONTRACTS, size=rows, p=[0.55, 0.25, 0.20])
    payment = rng.choice(PAYMENTS, size=rows, p=[0.45, 0.30, 0.24, 0.01])
    gender = rng.choice(["Female", "Male"], size=rows)
    tenure = rng.integers(0, 73, size=rows)
    monthly = np.round(rng.uniform(18.0, 120.0, size=rows), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.1, size=rows), 2)
    tickets = rng.poisson(1.5, size=rows).astype(float)
    paperless = rng.random(rows) < 0.6
    logit = (
        1.2 * (contract == "Month-to-month")
        - 1.0 * (contract == "Two year")
        + 0.6 * (payment == "Electronic check")
        - 0.045 * tenure
        + 0.018 * (monthly - 70)
        + 0.25 * tickets
        - 0.3
    )
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    frame = pd.DataFrame(
        {
            "customerID": [f"{i:04d}-{rng.integers(0, 26**4):06X}" for i in range(rows)],
            "gender": gender,
            "Contract": contract,
            "PaymentMethod": payment,
            "PaperlessBilling": paperless,
            "tenure": tenure,
            "MonthlyCharges": monthly,
            "TotalCharges": total,
            "SupportTickets": tickets,
            "Churn": churn,
        }
    )
    # Blanks, as exports have them: new customers have no total yet, ticket counts are sometimes missing.
    frame.loc[frame["tenure"] == 0, "TotalCharges"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "SupportTickets"] = np.nan
    frame["SupportTickets"] = frame["SupportTickets"].astype("Int64")
    return frame


def write_messy_export(path: str | Path, rows: int = 2400, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    messy_frame(rows, seed).to_csv(path, index=False)
    return path
