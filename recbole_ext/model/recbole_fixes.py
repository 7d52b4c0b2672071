"""Subclasses of RecBole models whose own methods break on today's stack.

:func:`recbole_ext.utils.get_model` passes every RecBole model class through :func:`mended`:
a class registered here resolves to its mended subclass (same name, so logs, YAML defaults and
trainer lookup are unchanged); every other class is returned as it is.
"""

from __future__ import annotations

from typing import Callable, Dict

_MENDERS: Dict[str, Callable[[type], type]] = {}


def register(name: str):
    """Register a function that builds the mended subclass of RecBole's model ``name``."""

    def deco(fn):
        _MENDERS[name] = fn
        return fn

    return deco


_CACHE: Dict[type, type] = {}


def mended(model_class: type) -> type:
    fn = _MENDERS.get(model_class.__name__)
    if fn is None:
        return model_class
    if model_class not in _CACHE:
        _CACHE[model_class] = fn(model_class)
    return _CACHE[model_class]
