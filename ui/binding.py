"""Controls bound to settings by name: one {parameter name: component} mapping per endpoint.

A handler's signature is its endpoint's public API: the parameter names and their order are what
gradio_client callers pass, and they never change (a new control is a new parameter at the end).
From that signature and one mapping of names to components come

* the event's ``inputs`` list (``inputs``): each component placed where its name sits in the signature;
* the settings the handler runs with (``settings_from``): every parameter whose name is a field of the
  pipeline's settings dataclass, nested ones included (``SoundToMusicSettings.mask`` from ``invert``,
  ``brightness``, ...), fills that field;
* the ZeroGPU estimate (``gpu_estimate``): the same arguments, bound by name, into the same settings.

So adding a mask option is one settings field, one parameter and one mapping entry; no positional
list to keep in step. Imports no torch (the UI never touches a device).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from pipelines.schema import limits


def label(settings: type, name: str, note: str = "") -> str:
    """The label of the control bound to field ``name`` of ``settings``: the field's name as the settings
    give it (``Settings.label``, the one home of a control's name, which the pipelines' refusals use too),
    then ``note`` in parentheses ("Steps (DDIM)", "Length (s)")."""
    named = settings.label(name)
    return f"{named} ({note})" if note else named


def control_name(block: Any) -> str:
    """How a refusal names a control (``block``, or its label): its label up to the note in parentheses
    ("Genre LoRA scale (0: off; ...)" is "Genre LoRA scale"), the same name the settings' own checks use
    (``label``)."""
    text = block if isinstance(block, str) else getattr(block, "label", None) or type(block).__name__
    return str(text).split(" (")[0].strip() or str(text)


def parameters(fn: Callable) -> list[str]:
    """The names of ``fn``'s parameters that inputs fill, in order (gradio's own ``gr.Request`` and
    ``gr.Progress`` parameters are left out: gradio fills those itself)."""
    names = []
    for name, parameter in inspect.signature(fn).parameters.items():
        if parameter.annotation in (gr.Request, "gr.Request") or isinstance(parameter.default, gr.Progress):
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{fn.__name__} must name its parameters to be bound by name, not take *{name}.")
        names.append(name)
    return names


def inputs(fn: Callable, controls: Mapping[str, Any]) -> list[Any]:
    """The components of ``controls`` in the order of ``fn``'s parameters (the public API's order).

    Raises ValueError naming a parameter without a control or a control without a parameter."""
    names = parameters(fn)
    missing = [name for name in names if name not in controls]
    unused = [name for name in controls if name not in names]
    if missing or unused:
        raise ValueError(f"{fn.__name__}: no control for {missing}, no parameter for {unused}.")
    return [controls[name] for name in names]


def arguments(fn: Callable, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``fn``'s arguments by name for a call with ``args`` and ``kwargs``, defaults filled in."""
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _is_settings(default: Any) -> bool:
    return isinstance(default, limits.Settings)


def settings_from(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls`` (a settings dataclass) with every field that ``values`` names set to its value; a nested
    settings field is built the same way from the values named after its own fields. Names that are
    no field are ignored; fields not named keep their defaults; a text field given None (an API
    caller leaving it out) becomes "". Not validated: the Studio validates once per request."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            value = values[field.name]
            if value is None and isinstance(field.default, str):
                value = ""
            changes[field.name] = value
        elif field.default_factory is not dataclasses.MISSING and _is_settings(default := field.default_factory()):
            changes[field.name] = settings_from(type(default), values)
    return cls(**changes)


def fields_of(cls: type) -> dict[str, type]:
    """Every field name that ``settings_from`` fills in ``cls``, nested settings' fields included,
    mapped to the settings class that owns it (for the tests that check each control's field)."""
    owners: dict[str, type] = {}
    for field in dataclasses.fields(cls):
        if field.default_factory is not dataclasses.MISSING and _is_settings(default := field.default_factory()):
            owners.update(fields_of(type(default)))
        else:
            owners[field.name] = cls
    return owners


def gpu_estimate(fn: Callable, cls: type, seconds: Callable[[Any, dict[str, Any]], int],
                 fallback: Any = None) -> Callable[..., int]:
    """ZeroGPU's duration for a call of ``fn``: ``seconds(settings, arguments)`` with the settings built
    from the call's arguments by name (``settings_from``); when those cannot give a number (a value
    of the wrong type), ``seconds(fallback, arguments)``, the worst case (default: ``cls()``)."""

    def estimate(*args: Any, **kwargs: Any) -> int:
        values = arguments(fn, args, kwargs)
        try:
            return int(seconds(settings_from(cls, values), values))
        except (TypeError, ValueError):
            return int(seconds(fallback if fallback is not None else cls(), values))

    return estimate
