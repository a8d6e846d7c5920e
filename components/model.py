"""A trained classifier with its preprocessing, and its pickle-free file format.

scikit-learn objects are stored with skops (loaded only if every type in the
file is from an allow-listed package); PyTorch weights as a ``state_dict``
loaded with ``weights_only=True``. Nothing here unpickles arbitrary files.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SAFE_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
META_FILE = "model.json"


class UnsafeModelFileError(ValueError):
    """A model file holds a type outside the allow-list; it was not loaded."""


@dataclass(frozen=True)
class TrainedModel:
    """A fitted candidate that predicts from raw feature frames."""

    name: str
    family: str
    params: dict[str, Any]
    feature_columns: list[str]
    classes: list[Any]  # [negative, positive] as they appear in the target column
    estimator: Any  # sklearn Pipeline, or the torch module for torch_mlp
    preprocessor: Any = None  # fitted ColumnTransformer for torch_mlp
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class (``classes[1]``) per row."""
        missing = [c for c in self.feature_columns if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature columns: {', '.join(missing)}")
        frame = X[self.feature_columns]
        if self.family == "torch_mlp":
            from components.torch_mlp import mlp_proba

            return mlp_proba(self.estimator, self.preprocessor.transform(frame))
        return self.estimator.predict_proba(frame)[:, 1].astype(np.float64)

    def predict_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        proba = self.predict_proba(X)
        labels = np.where(proba >= self.threshold, self.classes[1], self.classes[0])
        return pd.DataFrame({"label": labels, "probability": proba}, index=X.index)


def _skops_dump(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)
    _stable_skops(path)


def _stable_skops(path: Path) -> None:
    """Rewrite a skops file so that equal objects give equal bytes.

    skops names archive entries and ``__id__`` fields after ``id()`` of the saved
    objects and stamps entries with the current time, which all change from run to
    run. Ids are renumbered in schema order and times fixed; loading is unaffected.
    """
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        blobs = {n: archive.read(n) for n in archive.namelist() if n != "schema.json"}
    ids: dict[Any, int] = {}
    files: dict[str, bytes] = {}

    def new_id(old: Any) -> int:
        return ids.setdefault(int(old) if str(old).isdigit() else old, len(ids) + 1)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__":
                out[key] = new_id(value)
            elif key == "file" and isinstance(value, str) and value in blobs:
                stem, _, ext = value.partition(".")
                out[key] = f"{new_id(stem)}.{ext}"
                files[out[key]] = blobs[value]
            else:
                out[key] = walk(value)
        return out

    schema = walk(schema)
    files["schema.json"] = json.dumps(schema, indent=2).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])


def _skops_load(path: Path) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unsafe = [t for t in untrusted if not t.startswith(SAFE_TYPE_PREFIXES)]
    if unsafe:
        raise UnsafeModelFileError(f"{path.name} holds types outside the allow-list: {', '.join(unsafe)}")
    return sio.load(path, trusted=untrusted)


def save_model(model: TrainedModel, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": model.name,
        "family": model.family,
        "params": model.params,
        "feature_columns": model.feature_columns,
        "classes": [c.item() if hasattr(c, "item") else c for c in model.classes],
        "threshold": model.threshold,
    }
    if model.family == "torch_mlp":
        import torch

        _skops_dump(model.preprocessor, directory / "preprocessor.skops")
        torch.save(model.estimator.state_dict(), directory / "mlp_state.pt")
        meta["n_inputs"] = model.extra["n_inputs"]
    else:
        _skops_dump(model.estimator, directory / "estimator.skops")
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load_model(directory: str | Path) -> TrainedModel:
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    common = {k: meta[k] for k in ("name", "family", "params", "feature_columns", "classes", "threshold")}
    if meta["family"] == "torch_mlp":
        import torch

        from components.torch_mlp import build_mlp

        net = build_mlp(meta["n_inputs"], meta["params"]["hidden"])
        net.load_state_dict(torch.load(directory / "mlp_state.pt", weights_only=True))
        net.eval()
        return TrainedModel(
            **common,
            estimator=net,
            preprocessor=_skops_load(directory / "preprocessor.skops"),
            extra={"n_inputs": meta["n_inputs"]},
        )
    return TrainedModel(**common, estimator=_skops_load(directory / "estimator.skops"))
