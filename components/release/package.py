"""Package a registered MLflow model version as a BentoML bento.

The bento is built from the registry (one source of truth) and tagged with an
exact version; its labels carry the lineage. Its ``bento_config.json`` says what the
service answers: the model's task, its classes, and the value histogram's buckets; and what its
OpenAPI page shows: an example record (a held-out row) and the version's test metrics and gate reason.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

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
# Packages only some models need: in the bento when the model's own requirements name them.
MODEL_PACKAGES = ("lightgbm",)
# System libraries a package needs in the bento's image: LightGBM's wheel links the system
# OpenMP runtime, which slim Debian images lack (scikit-learn and torch bundle their own).
SYSTEM_PACKAGES = {"lightgbm": ("libgomp1",)}
_TASKS = ("binary", "multiclass", "regression")  # components.model.tasks.TASKS


def label_value(value: Any) -> str:
    """BentoML labels allow a restricted charset; keep them readable."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", str(value))[:63]


def pinned_requirements(constraints: Path | None, extra: tuple[str, ...] = ()) -> list[str]:
    """Pins for the bento's runtime packages (and ``extra`` ones), read from the project's lock file."""
    wanted = (*RUNTIME_PACKAGES, *(p for p in extra if p not in RUNTIME_PACKAGES))
    pins: dict[str, str] = {}
    if constraints and constraints.is_file():
        for line in constraints.read_text().splitlines():
            name, sep, ver = line.partition("==")
            if sep and name.strip().lower() in wanted:
                pins[name.strip().lower()] = f"{name.strip()}=={ver.strip()}"
    return [pins.get(p, p) for p in wanted]


def _requirement_name(line: str) -> str:
    """``lightgbm==4.7.0`` -> ``lightgbm`` (also ``>=``, extras, markers)."""
    return re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def model_packages(mlflow_dir: Path) -> tuple[str, ...]:
    """The ``MODEL_PACKAGES`` the MLflow model's own ``requirements.txt`` names (registry.log_model writes it)."""
    path = mlflow_dir / "requirements.txt"
    names = {_requirement_name(line) for line in path.read_text().splitlines()} if path.is_file() else set()
    return tuple(p for p in MODEL_PACKAGES if p in names)


def model_meta(mlflow_dir: Path) -> dict[str, Any]:
    """The model's ``model.json`` (components.model.files), found through the MLmodel's artifacts; {} if none."""
    import yaml

    mlmodel = mlflow_dir / "MLmodel"
    if not mlmodel.is_file():
        return {}
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("python_function") or {}
    artifact = (flavor.get("artifacts") or {}).get("model_dir") or {}
    path = mlflow_dir / str(artifact.get("path", "")) / "model.json"
    return json.loads(path.read_text()) if artifact.get("path") and path.is_file() else {}


def serving_config(
    task: str, classes: list[Any] | None, value_buckets: list[float] | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """``task``, ``classes`` and ``value_buckets`` for bento_config.json, checked against the model's own
    ``model.json`` (``meta``): a bento that labels answers with the wrong task or classes must not be built."""
    if task not in _TASKS:
        raise ValueError(f"task: {task!r} is not one of {', '.join(_TASKS)}")
    own_task = meta.get("task", "binary") if meta else None  # model.json without a task: a binary model
    if own_task is not None and own_task != task:
        raise ValueError(f"task: the bento was asked for {task!r}, but the model is a {own_task!r} model")
    if classes is None:
        classes = list(meta.get("classes") or []) if task != "regression" else []
    classes = [c.item() if hasattr(c, "item") else c for c in classes]  # numpy scalars are not JSON
    if meta and [str(c) for c in classes] != [str(c) for c in meta.get("classes") or []]:
        raise ValueError(f"classes: {classes!r} differ from the model's own {meta.get('classes')!r}")
    if task != "regression" and len(classes) < 2:
        raise ValueError(f"classes: a {task} bento needs the model's classes, got {classes!r}")
    buckets = None
    if value_buckets is not None:
        if task != "regression":
            raise ValueError(f"value_buckets: only a regression bento has a value histogram (task {task!r})")
        buckets = sorted({float(b) for b in value_buckets if math.isfinite(float(b))})
        if not buckets:
            raise ValueError(f"value_buckets: need at least one finite bucket bound, got {list(value_buckets)!r}")
    return {"task": task, "classes": classes, "value_buckets": buckets}


def example_record(rows: pd.DataFrame | None, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The first of ``rows`` (held-out data) the service accepts, as JSON: the OpenAPI example. None if none does."""
    from components.release.infra_validation import frame_to_records
    from components.serving.request_schema import RequestError, RequestValidator

    names = [f["name"] for f in schema["features"]]
    if rows is None or not set(names) <= set(rows.columns):
        return None
    validator = RequestValidator(schema, max_batch=1)
    for record in frame_to_records(rows[names].head(100)):
        try:
            validator([record])
        except RequestError:
            continue  # a null or an out-of-range value the contract only warns about: not an example
        return record
    return None


def model_card(registered_model: str, version: str) -> dict[str, Any]:
    """What the docs page tells about the version, read from the registry: its run's ``test_*`` metrics
    (logged before it was registered) and the gate's reason (a version tag)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_model_version(registered_model, version)
    metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
    return {
        "test_metrics": {
            k.removeprefix("test_"): float(x) for k, x in sorted(metrics.items()) if k.startswith("test_")
        },
        "decision_reason": (found.tags or {}).get("decision_reason"),
    }


def forget_service_modules() -> None:
    """BentoML builds by importing ``service`` from the build context; Python caches that import, so a
    later build in the same process (a worker training two models) would get the first bento's service."""
    shipped = {p.stem for p in _SERVING.glob("*.py") if p.name != "__init__.py"}  # imported flat in a bento
    for name in [n for n in sys.modules if n.split(".")[0] in shipped]:
        del sys.modules[name]


def import_registered_model(registered_model: str, version: str, service_name: str, labels: dict[str, str]):
    """``models:/<registered_model>/<version>`` into the bento store as ``<service_name>-model``."""
    import bentoml

    return bentoml.mlflow.import_model(
        f"{service_name}-model",
        model_uri=f"models:/{registered_model}/{version}",
        labels=labels,
        metadata={"registered_model": registered_model, "version": version},
    )


def copy_serving_modules(ctx_path: Path) -> list[str]:
    """Every module of components/serving, flat, into a build context; their names. A service imports its
    neighbours as top-level modules, and a new one must never be left out of a bento."""
    modules = sorted(p.name for p in _SERVING.glob("*.py") if p.name != "__init__.py")
    for name in modules:
        shutil.copy(_SERVING / name, ctx_path / name)
    return modules


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
    task: str = "binary",
    classes: list[Any] | None = None,
    value_buckets: list[float] | None = None,
    example_rows: pd.DataFrame | None = None,
) -> str:
    """Import ``models:/<registered_model>/<version>`` and build a bento; return its exact tag.

    ``task`` and ``classes`` say what the service answers (``classes`` defaults to the model's
    own); ``value_buckets`` are the bounds of a regression bento's ``mlops_prediction_value``
    histogram (quantiles of the training target, say). ``example_rows`` (held-out rows) give the
    OpenAPI document its example; without them it shows a record made up from the schema.
    """
    import bentoml

    model_labels = {k: label_value(v) for k, v in metadata.items()}
    bento_model = import_registered_model(registered_model, version, service_name, model_labels)
    mlflow_dir = Path(bento_model.path_of("mlflow_model"))  # where bentoml.mlflow keeps the MLflow model
    packages = model_packages(mlflow_dir)
    config = {
        **serving_config(task, classes, value_buckets, model_meta(mlflow_dir)),
        "service_name": service_name,
        "model_tag": str(bento_model.tag),
        "schema": schema,
        "max_batch": max_batch,
        "low_confidence_threshold": low_confidence_threshold,
        "metadata": {**metadata, "registered_model": registered_model, "model_version": version},
        "example": example_record(example_rows, schema),
        "model_card": model_card(registered_model, version),
    }
    forget_service_modules()  # else a second build in this process reuses the first one's service (and name)
    with tempfile.TemporaryDirectory(prefix="bento-build-") as ctx:
        ctx_path = Path(ctx)
        modules = copy_serving_modules(ctx_path)
        (ctx_path / "bento_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (ctx_path / "requirements.txt").write_text("\n".join(pinned_requirements(constraints, packages)) + "\n")
        system = sorted({lib for p in packages for lib in SYSTEM_PACKAGES.get(p, ())})
        bento = bentoml.bentos.build(
            "service:Classifier",
            name=service_name,
            labels=model_labels,
            include=[*modules, "bento_config.json", "requirements.txt"],
            python={"requirements_txt": "requirements.txt", "lock_packages": False},
            docker={"system_packages": system} if system else None,
            build_ctx=str(ctx_path),
        )
    log.info("built bento %s from %s v%s", bento.tag, registered_model, version)
    return str(bento.tag)
