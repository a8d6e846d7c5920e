"""Dynamic int8 quantization of the torch models: making the int8 net, and rebuilding it when a model loads.

Here because it ships inside every model (``components/model`` is the MLflow model's code): the tabular
MLP (``TrainedModel``, family ``torch_mlp``) and the image CNN (``ImageModel``, family ``torch_cnn``)
both record ``QUANTIZATION_RECIPE`` when released quantized, keep their float weights, and are quantized
again at load (``quantize_at_load``): dynamic quantization depends on the weights alone. Why the weights
stay float: a quantized ``state_dict`` loads only into a net already quantized alike, safetensors cannot
hold it, and ``torch.ao.quantization`` is deprecated. What it costs and whether to accept it are in
``components.images.quantize`` (the report and the gate).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

QUANTIZATION_KEY = "quantization"
QUANTIZATION_RECIPE = {"scheme": "dynamic_int8", "modules": ["Linear"]}
QUANTIZABLE = ("torch_cnn", "torch_mlp")


def _record_field(model: Any) -> str:
    """Where a model keeps plain facts about itself: ``fit`` on an ImageModel, ``extra`` on a TrainedModel."""
    return "fit" if hasattr(model, "image") else "extra"


def _quantized_net(net: Any) -> Any:
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of torchao (not installed here);
        # the eager API still works in torch 2.13 and the weights are all we depend on (see quantize_at_load).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # Only Linear layers: dynamic quantization stores their weights as int8 and quantizes each
        # batch's activations on the fly. Convolutions have no dynamic kernel, so the CNN's conv layers
        # stay float; on the digits CNN the Linear head holds half the weights and most of the bytes.
        # inplace=False: quantize_dynamic deep-copies, so the input net is untouched.
        return quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8, inplace=False).eval()


def is_quantized(model: Any) -> bool:
    """Whether ``model``'s net holds int8 layers (a recorded recipe alone, on float weights, is not enough)."""
    return is_quantized_net(model.estimator)


def quantize_dynamic_int8(model: Any) -> Any:
    """A copy of ``model`` (torch_cnn ImageModel or torch_mlp TrainedModel) whose Linear layers are int8,
    recording ``QUANTIZATION_RECIPE`` under ``quantization``; ``model`` itself is left as it was."""
    if getattr(model, "family", None) not in QUANTIZABLE:
        raise ValueError(f"model {getattr(model, 'name', '?')!r} of family {getattr(model, 'family', None)!r}: "
                         f"dynamic int8 quantization applies to {', '.join(QUANTIZABLE)} only")  # fmt: skip
    if is_quantized(model):
        raise ValueError(f"model {model.name!r} is already quantized")
    field = _record_field(model)
    record = {**(getattr(model, field) or {}), QUANTIZATION_KEY: dict(QUANTIZATION_RECIPE)}
    return dataclasses.replace(model, estimator=_quantized_net(model.estimator), **{field: record})


def marked_for_quantization(float_model: Any) -> Any:
    """What the model files store for a quantized model: the float weights, recording the recipe that
    ``quantize_at_load`` applies. A quantized state_dict loads only into a net quantized alike (see the
    module docstring), so the existing pickle-free savers keep working unchanged."""
    if is_quantized(float_model):
        raise ValueError(f"model {float_model.name!r}: mark the float model, not the quantized one")
    field = _record_field(float_model)
    record = {**(getattr(float_model, field) or {}), QUANTIZATION_KEY: dict(QUANTIZATION_RECIPE)}
    return dataclasses.replace(float_model, **{field: record})


def quantize_at_load(model: Any) -> Any:
    """``model`` as loaded from its files: quantized if it records the recipe on float weights, else as it is.
    Dynamic quantization depends on the weights alone, so this rebuilds the int8 net that was measured."""
    recipe = (getattr(model, _record_field(model)) or {}).get(QUANTIZATION_KEY)
    if recipe is None or is_quantized(model):
        return model
    if recipe != QUANTIZATION_RECIPE:
        raise ValueError(f"model {model.name!r}: unknown quantization recipe {recipe!r}; "
                         f"this code applies {QUANTIZATION_RECIPE!r}")  # fmt: skip
    return quantize_dynamic_int8(model)


def is_quantized_net(net: Any) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in net.modules())


def forward(net: Any, x: Any) -> Any:
    """``net(x)``; a dynamically quantized net is called one row at a time. It scales each call's
    activations to that call's own range, so batched, a row's answer would depend on the rows beside it
    (by up to 0.02 in probability on a small MLP): the service's micro-batches, a batch endpoint and the
    registered pyfunc must all give a row the same answer."""
    import torch

    if len(x) <= 1 or not is_quantized_net(net):
        return net(x)
    return torch.cat([net(x[i : i + 1]) for i in range(len(x))])
