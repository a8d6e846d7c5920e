"""Log an ``ImageModel`` as an MLflow pyfunc: the image counterpart of ``components.release.registry.log_model``.

Models-from-code (``pyfunc_entry``), files without pickle (``model_files``), and shipped code limited to
what loading and predicting import: the whole ``components/model`` package (``model_files`` reuses its
skops loader and ``tasks``) and ``IMAGE_MODULES`` of ``components/images``.

No MLflow signature: the ``image`` column holds paths, encoded bytes or pixel arrays, and no MLflow column
type accepts all three; ``components.model.trained.pyfunc_input`` passes a frame through unchanged when a
model declares none, so the gate's ``champion_scores`` sends the test frame as it is. For the same reason
there is no input example (bytes and arrays are not JSON). The image spec and classes are in the MLmodel's
``metadata`` instead, where the image bento's build reads them.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from components.images.image_model import IMAGE_COLUMN, TORCH_CNN, ImageModel
from components.images.model_files import save_image_model

_COMPONENTS = Path(__file__).resolve().parents[1]
ENTRY = Path(__file__).resolve().parent / "pyfunc_entry.py"
# The modules of components/images a loaded model imports (tests check this list is closed under imports).
IMAGE_MODULES = ("__init__", "cnn", "image_model", "manifest", "model_files", "pixels", "quantize")
# Beyond registry.pip_requirements' base: Pillow decodes every image; torch runs the CNN.
FAMILY_PACKAGES = {TORCH_CNN: ("pillow", "torch", "safetensors")}
BASE_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow", "scipy", "pillow")


@functools.cache
def image_pip_requirements(family: str) -> tuple[str, ...]:
    """Exact pins (installed versions) for a ``family`` image model; a package not installed is left out
    unless the model needs it (safetensors is optional: ``model_files`` falls back to ``torch.save``)."""
    pins = []
    for name in dict.fromkeys((*BASE_PACKAGES, *FAMILY_PACKAGES.get(family, ()))):
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            if name != "safetensors":
                pins.append(name)
    return tuple(pins)


def shipped_code(tmp: Path) -> Path:
    """``components/`` holding the model package and the image modules, imported by their real names."""
    shipped = tmp / "code" / "components"
    shutil.copytree(_COMPONENTS / "model", shipped / "model", ignore=shutil.ignore_patterns("__pycache__"))
    (shipped / "images").mkdir()
    for name in IMAGE_MODULES:
        shutil.copy(_COMPONENTS / "images" / f"{name}.py", shipped / "images" / f"{name}.py")
    (shipped / "__init__.py").write_text("")
    return shipped


def model_metadata(model: ImageModel) -> dict[str, object]:
    """What the MLmodel file says about the model, for builds that must not load it (the bento's)."""
    return {"kind": "image", "family": model.family, "task": model.task, "classes": list(model.classes),
            "image": model.image.to_dict()}  # fmt: skip


def log_image_model(model: ImageModel, example: pd.DataFrame) -> str:
    """Log ``model`` as a pyfunc named "model" in the active run; return its model URI.

    ``example`` (a frame with an ``image`` column) is predicted on first, so an image the model cannot
    read fails here, naming it, and not after the run has logged a model nobody can call.
    """
    import mlflow

    if IMAGE_COLUMN not in example.columns:
        raise ValueError(f"example: an image frame needs an '{IMAGE_COLUMN}' column, got {list(example.columns)}")
    if example.empty:
        raise ValueError("example: needs at least one image")
    model.predict_frame(example.head(5))
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_image_model(model, Path(tmp) / "model")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(shipped_code(Path(tmp)))],
            pip_requirements=list(image_pip_requirements(model.family)),
            metadata=model_metadata(model),
        )
    return info.model_uri
