"""An image model's pickle-free file format: ``image_model.json`` beside the CNN's weights or a skops file.

- ``torch_cnn``: the ``state_dict`` as ``cnn_state.safetensors`` when safetensors is installed (a format
  that holds tensors and nothing else), else ``cnn_state.pt`` written by ``torch.save`` and read with
  ``weights_only=True`` (torch's restricted unpickler: tensors and plain containers only). The JSON
  holds the sizes that rebuild the net around them.
- ``sklearn_logreg_pixels``: the estimator in skops, loaded only if every type in it is allow-listed,
  exactly as the tabular models are (``components.model.files``).

A file that holds anything else is refused with an ``UnsafeModelFileError`` naming it; nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.images.cnn import build_cnn
from components.images.image_model import FAMILIES, TORCH_CNN, ImageModel
from components.images.pixels import ImageSpec
from components.model.files import UnsafeModelFileError, _skops_dump, _skops_load

SPEC_FILE = "image_model.json"
SKOPS_FILE = "estimator.skops"
SAFETENSORS_FILE, TORCH_FILE = "cnn_state.safetensors", "cnn_state.pt"
# Bumped when the layout changes, so an old loader refuses a newer directory instead of misreading it.
FORMAT_VERSION = 1


def _has_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _architecture(model: ImageModel) -> dict[str, Any]:
    """What ``build_cnn`` needs to rebuild the net the weights belong to."""
    c, h, w = model.image.shape
    return {"in_channels": c, "height": h, "width": w, "n_classes": len(model.classes),
            "channels": list(model.params["channels"])}  # fmt: skip


def save_image_model(model: ImageModel, directory: str | Path) -> Path:
    """Write ``model`` under ``directory`` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "family": model.family,
        "classes": list(model.classes),
        "image": model.image.to_dict(),
        "params": model.params,
        "fit": model.fit,
    }
    if model.family == TORCH_CNN:
        # Contiguous copies: safetensors refuses views, and torch.save would store a view's whole base.
        state = {k: v.detach().contiguous().clone() for k, v in model.estimator.state_dict().items()}
        spec["architecture"] = _architecture(model)
        if _has_safetensors():
            from safetensors.torch import save_file

            spec["weights"] = SAFETENSORS_FILE
            save_file(state, str(directory / SAFETENSORS_FILE))
        else:
            import torch

            spec["weights"] = TORCH_FILE
            torch.save(state, directory / TORCH_FILE)
    else:
        spec["weights"] = SKOPS_FILE
        _skops_dump(model.estimator, directory / SKOPS_FILE)
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True))
    return directory


def _load_state(path: Path) -> dict[str, Any]:
    """A ``state_dict`` from tensors-only files; anything else in them is refused, naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the model's weights file is missing")
    if path.name == SAFETENSORS_FILE:
        from safetensors.torch import load_file

        return load_file(str(path))
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:  # what weights_only raises on any type outside its allow-list
        raise UnsafeModelFileError(f"{path}: refused by torch.load(weights_only=True): {err}") from None


def _load_cnn(directory: Path, spec: dict[str, Any]):
    arch = spec["architecture"]
    path = directory / spec["weights"]
    net = build_cnn(arch["in_channels"], arch["height"], arch["width"], arch["n_classes"], tuple(arch["channels"]))
    try:
        net.load_state_dict(_load_state(path))
    except RuntimeError as err:  # missing, unexpected or wrongly shaped tensors
        raise ValueError(f"{path}: weights do not fit the architecture in {SPEC_FILE}: {err}") from None
    return net.eval()


def _load_skops(path: Path) -> Any:
    """The skops estimator, if every type in it is allow-listed; errors carry the file's full path."""
    import zipfile

    if not path.is_file():
        raise FileNotFoundError(f"{path}: the model's skops file is missing")
    try:
        return _skops_load(path)
    except UnsafeModelFileError as err:
        raise UnsafeModelFileError(f"{path}: {err}") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable skops file: {err}") from None


def _load_skops_estimator(directory: Path, spec: dict[str, Any]) -> Any:
    return _load_skops(directory / spec["weights"])


def load_image_model(directory: str | Path) -> ImageModel:
    """Read a directory written by ``save_image_model``; a tampered or foreign file is an error naming it."""
    directory = Path(directory)
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: not an image model directory (no {SPEC_FILE})")
    spec = json.loads(spec_path.read_text())
    if spec.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{spec_path}: format_version {spec.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    if Path(spec["weights"]).name != spec["weights"]:  # a spec must not point outside its directory
        raise UnsafeModelFileError(f"{spec_path}: weights {spec['weights']!r} is not a file name in the directory")
    if spec.get("family") not in FAMILIES:
        raise ValueError(f"{spec_path}: family {spec.get('family')!r} is not one of {', '.join(FAMILIES)}")
    load = _load_cnn if spec["family"] == TORCH_CNN else _load_skops_estimator
    estimator = load(directory, spec)
    model = ImageModel(
        name=spec["name"],
        family=spec["family"],
        classes=list(spec["classes"]),
        image=ImageSpec(**spec["image"]),
        params=spec["params"],
        estimator=estimator,
        fit=spec.get("fit", {}),
    )
    # A CNN released quantized keeps float weights and the recipe; applied here, the int8 net that was measured.
    from components.model.quantization import quantize_at_load

    return quantize_at_load(model) if model.family == TORCH_CNN else model
