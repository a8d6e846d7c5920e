"""Settings that belong to a dataset, not to the pipeline: resolved from its contract.

The registered model's name, the service name, the absolute thresholds, the slices and the
behaviour tests only make sense for one dataset, so they live in the dataset's contract (its
``name`` and its ``evaluation`` section). ``params.yaml`` leaves them null; a value set there
(or with ``--set``) still wins, for users who want one params file per dataset.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.config import ConfigError, Settings, SliceSettings

if TYPE_CHECKING:
    from components.data.contract import Contract

EVALUATION_KEYS = ("thresholds", "slices", "behaviour")


def service_name_for(model_name: str) -> str:
    """A BentoML service name for a registered model name: lowercase letters, digits, - and _."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", model_name.lower()).strip("-_")
    return slug or "model"


def model_name(settings: Settings, contract: Contract | None) -> str:
    """``promote.registered_model`` when set, else the contract's name."""
    if settings.promote.registered_model:
        return settings.promote.registered_model
    if contract is None:
        raise ConfigError(
            "promote.registered_model is null and no contract is configured (validate.contract) to name the "
            "model: set one of them"
        )
    return contract.name


def resolve(settings: Settings, contract: Contract | None) -> Settings:
    """``settings`` with every dataset-specific value filled in from ``contract`` where params left it null."""
    name = model_name(settings, contract)
    evaluation: dict[str, Any] = dict(contract.evaluation) if contract is not None else {}
    ev = settings.evaluate
    where = f"contract '{contract.name}' evaluation" if contract is not None else "params"
    try:
        slices = ev.slices if ev.slices is not None else SliceSettings(**(evaluation.get("slices") or {}))
    except ValueError as err:
        raise ConfigError(f"{where}.slices: {err}") from None
    evaluate = ev.model_copy(
        update={
            "thresholds": ev.thresholds if ev.thresholds is not None else dict(evaluation.get("thresholds") or {}),
            "slices": slices,
            "behaviour": ev.behaviour if ev.behaviour is not None else list(evaluation.get("behaviour") or []),
        }
    )
    promote = settings.promote.model_copy(update={"registered_model": name})
    service = settings.package.service_name or service_name_for(name)
    package = settings.package.model_copy(update={"service_name": service})
    return settings.model_copy(update={"evaluate": evaluate, "promote": promote, "package": package})


def load_configured_contract(settings: Settings, root: Path) -> Contract | None:
    """The contract ``validate.contract`` names (relative to the params file's folder), or None."""
    if not settings.validate_.contract:
        return None
    from components.data.contract import load_contract

    return load_contract((root / settings.validate_.contract).resolve())


def default_model_name(params_path: str | Path) -> str:
    """The model a command acts on when no ``--model`` is given: the params' model, else its contract's name."""
    from components.config import load_settings

    settings = load_settings(params_path)
    if settings.promote.registered_model:
        return settings.promote.registered_model
    return model_name(settings, load_configured_contract(settings, Path(params_path).resolve().parent))
