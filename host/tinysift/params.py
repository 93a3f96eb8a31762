"""Estimator parameters, scikit-learn style: the constructor's arguments are the public
attributes (fitted state ends in ``_``), so a stage can record every parameter, defaults
included, and key its cache on them."""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from numbers import Integral, Real

import numpy as np


class Parameterized:
    """``get_params`` / ``plain_params`` for pruning methods and condensers."""

    def get_params(self) -> dict:
        """The constructor's parameters: attributes neither fitted (``x_``) nor private
        (``_x``, e.g. a condenser's working arrays)."""
        return {k: v for k, v in vars(self).items()
                if not k.endswith("_") and not k.startswith("_")}

    def plain_params(self) -> dict:
        """:meth:`get_params` as JSON values (nested configs as dicts), the seed left out:
        what a cache key or a results record needs to tell a changed default apart."""

        def plain(value):
            if dataclasses.is_dataclass(value):
                return dataclasses.asdict(value)
            raise TypeError(f"{type(value).__name__} is not a plain parameter")

        params = self.get_params()
        params.pop("seed", None)
        return json.loads(json.dumps(params, sort_keys=True, default=plain))


def is_whole(value, least: int | None = None) -> bool:
    """Whether ``value`` is a whole number (Python's or numpy's integer) of at least ``least``.

    A bool is not one, nor is a float even when whole: ``2.0`` where a count is meant is
    usually a fraction's or a division's result, and was truncated or failed later."""
    return (isinstance(value, Integral) and not isinstance(value, bool)
            and (least is None or value >= least))


_TYPE_TEXT = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
              dict: "a table", type(None): "absent"}


def value_fits(value, annotation) -> bool:
    """Whether a setting's value (TOML's, JSON's, a flag's, or a caller's numpy scalar) is of
    the annotated type: ``bool``, ``int``, ``float`` (a whole number too), ``str``, ``dict``,
    ``list[X]``, ``Literal[...]``, other classes by ``isinstance``, and unions of them
    (``int | None``). A bool is never a number; an annotation left as text is not checked."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation) or (typing.Any,)
        return isinstance(value, list) and all(value_fits(v, item) for v in value)
    if annotation is typing.Any or isinstance(annotation, str):
        return True
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool | np.bool_)
    if annotation in (int, float) and isinstance(value, bool | np.bool_):
        return False
    if annotation is int:
        return is_whole(value)
    if annotation is float:
        return isinstance(value, Real)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def describe_annotation(annotation) -> str:
    """What :func:`value_fits` takes, in words (``int | None``: "a whole number")."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_annotation(a) for a in typing.get_args(annotation)
                           if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation) or (typing.Any,)
        return f"a list of {describe_annotation(item).removeprefix('a ')}s" if item in (
            int, float, str) else "a list"
    return _TYPE_TEXT.get(origin or annotation, getattr(annotation, "__name__", str(annotation)))


def parameter_annotations(cls: type) -> dict:
    """The type each keyword parameter of ``cls(...)`` takes (see :func:`_init_parameters`),
    read from its annotation or, unannotated, from its default's type; a parameter with
    neither is left out (not checked)."""
    found = {}
    for p in _init_parameters(cls):
        if p.annotation is not inspect.Parameter.empty:
            found[p.name] = p.annotation
        elif type(p.default) in (bool, int, float, str):
            found[p.name] = type(p.default)
    return found


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """The keyword parameters ``cls(...)`` takes (annotations evaluated where they can be),
    those its ``**params`` pass on to a base class's ``__init__`` included; a name the
    subclass and a base both take is the subclass's."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init, eval_str=True)
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate: its default
            sig = inspect.signature(init)
        for n, p in sig.parameters.items():
            if n != "self" and n not in found and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                             p.KEYWORD_ONLY):
                found[n] = p
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return list(found.values())


def parameter_names(cls: type) -> set[str]:
    """The keyword parameters ``cls(...)`` takes, those its ``**params`` pass on to a base
    class's ``__init__`` included (flow takes vq's)."""
    return {p.name for p in _init_parameters(cls)}


def unknown_parameter(cls: type, params: dict, where: str,
                      takes_none: str = "it takes none") -> str | None:
    """What is wrong when ``params`` names a parameter ``cls(...)`` does not take
    (:func:`parameter_names`; it was a TypeError): ``"{where} has no parameter {name}; its
    parameters: ..."`` (or ``takes_none`` where it takes none but the seed); None when none.
    The caller raises it (this module sits below the error types)."""
    takes = parameter_names(cls)
    unknown = sorted(set(params) - takes)
    if not unknown:
        return None
    own = sorted(takes - {"seed"})
    return (f"{where} has no parameter {', '.join(unknown)}; "
            + (f"its parameters: {', '.join(own)}" if own else takes_none))


def mistyped_parameter(cls: type, params: dict, where: str) -> str | None:
    """What is wrong when a value of ``params`` is not of the type its parameter of
    ``cls(...)`` takes (:func:`parameter_annotations`, :func:`value_fits`: a bool where a
    number is meant ran as 1 or 0, a number in quotes failed deep inside a fit): ``"{where}:
    parameter {key} takes {type}, got {value!r}"``; None when every value fits."""
    annotations = parameter_annotations(cls)
    for key, value in params.items():
        if key in annotations and not value_fits(value, annotations[key]):
            return (f"{where}: parameter {key} takes {describe_annotation(annotations[key])}, "
                    f"got {value!r}")
    return None
