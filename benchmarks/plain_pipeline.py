"""The issue-19 job as a plain script, the baseline `benchmarks/pipeline.py` compares `mlops run` with.

Load the project's data (what `mlops ingest` writes), basic checks, a seeded 60/20/20 split, fit
logistic regression, HistGradientBoosting and an MLP, choose on validation ROC-AUC, score the test
split, then log params, metrics and the winning model to MLflow (a SQLite store) and register it.
No cache: every run does all of it again.

Two choices keep this baseline quick and steady, i.e. the comparison strict: fits and scoring run on one
thread (on a busy 2-core machine OpenMP's spinning threads made one HistGradientBoosting fit on 341 rows
take 3-12 s instead of 0.3 s; `mlops run` limits threads on small data the same way), and the model is
logged with its pip requirements given (MLflow's inference of them starts a subprocess: about 9 s here),
as `mlops run` does. Usage (from the project folder):

    python benchmarks/plain_pipeline.py --store plain-mlflow [--hgb-learning-rate 0.1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

SEED = 42
MODEL_NAME = "plain-breast-cancer"


def candidates(hgb_learning_rate: float) -> dict[str, tuple[object, dict[str, object]]]:
    """name -> (unfitted model, the params logged for it)."""
    logreg = {"C": 1.0, "max_iter": 1000}
    hgb = {"learning_rate": hgb_learning_rate, "max_iter": 200, "max_leaf_nodes": 31}
    mlp = {"hidden_layer_sizes": (64, 32), "learning_rate_init": 0.001, "max_iter": 200}
    return {
        "logreg": (make_pipeline(StandardScaler(), LogisticRegression(**logreg, random_state=SEED)), logreg),
        "hgb": (HistGradientBoostingClassifier(**hgb, random_state=SEED), hgb),
        "mlp": (make_pipeline(StandardScaler(), MLPClassifier(**mlp, random_state=SEED)), mlp),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/dataset.parquet")
    parser.add_argument("--target", default="target")
    parser.add_argument("--store", default="plain-mlflow", help="folder of the SQLite store and its artifacts")
    parser.add_argument("--hgb-learning-rate", type=float, default=0.1)
    args = parser.parse_args()

    frame = pd.read_parquet(args.data)
    if len(frame) < 100:
        raise SystemExit(f"too few rows: {len(frame)}")
    if frame.isna().any().any():
        raise SystemExit("nulls in the data")
    if set(frame[args.target].unique()) != {0, 1}:
        raise SystemExit("the target is not binary 0/1")
    X, y = frame.drop(columns=[args.target]), frame[args.target]
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, random_state=SEED, stratify=y_rest
    )

    fitted, val_auc = {}, {}
    specs = candidates(args.hgb_learning_rate)
    with threadpool_limits(1):
        for name, (model, _) in specs.items():
            fitted[name] = model.fit(X_train, y_train)
            val_auc[name] = roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])
        best = max(val_auc, key=val_auc.get)
        model = fitted[best]
        test = {
            "test_roc_auc": roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]),
            "test_accuracy": accuracy_score(y_test, model.predict(X_test)),
        }

    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(MODEL_NAME) is None:
        mlflow.create_experiment(MODEL_NAME, artifact_location=(store / "artifacts").as_uri())
    mlflow.set_experiment(MODEL_NAME)
    with mlflow.start_run():
        mlflow.log_params({"chosen": best, **{f"{best}.{k}": v for k, v in specs[best][1].items()}})
        mlflow.log_metrics({f"val_roc_auc_{name}": auc for name, auc in val_auc.items()} | test)
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=MODEL_NAME,
            input_example=X_train.head(5),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    print(f"chose {best}: val roc_auc {val_auc[best]:.4f}, test {test}")


if __name__ == "__main__":
    main()
