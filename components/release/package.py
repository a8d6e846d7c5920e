"""Package a registered MLflow model version as a BentoML bento.

The bento is built from the registry (one source of truth) and tagged with an
exact version; its labels carry the lineage.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SERVING = Path(__file__).resolve().parents[1] / "serving"  # what ships inside a bento
RUNTIME_PACKAGES = (
    "bentoml",
    "mlflow",
    "scikit-learn",
    "skops",
    "pandas",
    "numpy",
    "pyarrow",
    "scipy",
    "torch",
    # uvicorn (under `bentoml serve`) picks these up when installed: C HTTP parser, libuv loop
    "uvloop",
    "httptools",
)


def _label_value(value: Any) -> str:
    """BentoML labels allow a restricted charset; keep them readable."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", str(value))[:63]


def pinned_requirements(constraints: Path | None) -> list[str]:
    """Pins for the bento's runtime packages, read from the project's lock file."""
    pins: dict[str, str] = {}
    if constraints and constraints.is_file():
        for line in constraints.read_text().splitlines():
            name, sep, ver = line.partition("==")
            if sep and name.strip().lower() in RUNTIME_PACKAGES:
                pins[name.strip().lower()] = f"{name.strip()}=={ver.strip()}"
    return [pins.get(p, p) for p in RUNTIME_PACKAGES]


def _forget_service_modules() -> None:
    """BentoML builds by importing ``service`` from the build context; Python caches that import, so a
    later build in the same process (a worker training two models) would get the first bento's service."""
    shipped = {p.stem for p in _SERVING.glob("*.py") if p.name != "__init__.py"}  # imported flat in a bento
    for name in [n for n in sys.modules if n.split(".")[0] in shipped]:
        del sys.modules[name]


def build_bento(
    *,
    registered_model: str,
    version: str,
    service_name: str,
    metadata: dict[str, str],
    schema: dict[str, Any],
    constraints: Path | None,
    max_batch: int = 1000,
    low_confidence_threshold: float = 0.6,
) -> str:
    """Import ``models:/<registered_model>/<version>`` and build a bento; return its exact tag."""
    import bentoml

    model_labels = {k: _label_value(v) for k, v in metadata.items()}
    bento_model = bentoml.mlflow.import_model(
        f"{service_name}-model",
        model_uri=f"models:/{registered_model}/{version}",
        labels=model_labels,
        metadata={"registered_model": registered_model, "version": version},
    )
    config = {
        "service_name": service_name,
        "model_tag": str(bento_model.tag),
        "schema": schema,
        "max_batch": max_batch,
        "low_confidence_threshold": low_confidence_threshold,
        "metadata": {**metadata, "registered_model": registered_model, "model_version": version},
    }
    _forget_service_modules()  # else a second build in this process reuses the first one's service (and name)
    with tempfile.TemporaryDirectory(prefix="bento-build-") as ctx:
        ctx_path = Path(ctx)
        # Every module of components/serving, flat: service.py imports its neighbours as
        # top-level modules, and a new one must never be left out of the bento.
        modules = sorted(p.name for p in _SERVING.glob("*.py") if p.name != "__init__.py")
        for name in modules:
            shutil.copy(_SERVING / name, ctx_path / name)
        (ctx_path / "bento_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (ctx_path / "requirements.txt").write_text("\n".join(pinned_requirements(constraints)) + "\n")
        bento = bentoml.bentos.build(
            "service:Classifier",
            name=service_name,
            labels=model_labels,
            include=[*modules, "bento_config.json", "requirements.txt"],
            python={"requirements_txt": "requirements.txt", "lock_packages": False},
            build_ctx=str(ctx_path),
        )
    log.info("built bento %s from %s v%s", bento.tag, registered_model, version)
    return str(bento.tag)
