"""A trained model's pickle-free file format: ``model.json`` beside skops files, a torch ``state_dict``
or a LightGBM text model.

scikit-learn objects are stored with skops (loaded only if every type in the
file is from an allow-listed package); PyTorch weights as a ``state_dict``
loaded with ``weights_only=True``; LightGBM boosters in LightGBM's own text
format. Nothing here unpickles arbitrary files. Equal models give equal bytes.
skops, torch and lightgbm are imported inside the functions that write and read
them: importing any is slow, and most importers of a model never touch its files.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from components.model.lgbm import load_booster, save_booster
from components.model.quantization import quantize_at_load
from components.model.tasks import BINARY, check_task
from components.model.torch_net import build_mlp
from components.model.trained import TrainedModel

SAFE_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
META_FILE = "model.json"
# What a torch model needs besides its weights (model.extra -> model.json): the input width, the number of
# outputs (one per class for multiclass) and, for regression, the target's mean and spread the net predicts in.
# "quantization": the recipe of a model released with int8 Linear layers (components.model.quantization)
_TORCH_META = ("n_inputs", "n_outputs", "target_mean", "target_std", "quantization")


class UnsafeModelFileError(ValueError):
    """A model file holds a type outside the allow-list; it was not loaded."""


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
        "kinds": model.kinds,
        "task": model.task,
    }
    if model.family == "torch_mlp":
        import torch

        _skops_dump(model.preprocessor, directory / "preprocessor.skops")
        torch.save(model.estimator.state_dict(), directory / "mlp_state.pt")
        meta.update({k: model.extra[k] for k in _TORCH_META if k in model.extra})
    elif model.family == "lightgbm":
        _skops_dump(model.preprocessor, directory / "preprocessor.skops")
        save_booster(model.estimator, directory)
    else:
        _skops_dump(model.estimator, directory / "estimator.skops")
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return directory


def load_model(directory: str | Path) -> TrainedModel:
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    common = {k: meta[k] for k in ("name", "family", "params", "feature_columns", "classes", "threshold")}
    kinds = meta.get("kinds")  # model.json sorts its keys: the column order is feature_columns'
    common["kinds"] = None if kinds is None else {c: kinds[c] for c in meta["feature_columns"]}
    common["task"] = check_task(meta.get("task", BINARY))  # saved before tasks existed: binary
    if meta["family"] == "torch_mlp":
        import torch

        n_outputs = meta.get("n_outputs", 1)
        net = build_mlp(meta["n_inputs"], meta["params"]["hidden"], n_outputs)
        net.load_state_dict(torch.load(directory / "mlp_state.pt", weights_only=True))
        net.eval()
        model = TrainedModel(
            **common,
            estimator=net,
            preprocessor=_skops_load(directory / "preprocessor.skops"),
            extra={k: meta[k] for k in _TORCH_META if k in meta},
        )
        return quantize_at_load(model)  # the int8 net that was measured, when it was released quantized
    if meta["family"] == "lightgbm":
        return TrainedModel(
            **common, estimator=load_booster(directory), preprocessor=_skops_load(directory / "preprocessor.skops")
        )
    return TrainedModel(**common, estimator=_skops_load(directory / "estimator.skops"))
