"""Checks that an object implements a ``typing.Protocol``: every member present, and every method
callable with the protocol's parameters. Static (``inspect.getattr_static``): a property is never
evaluated, so checking the real ``Embedder`` loads no model."""
from __future__ import annotations

import inspect
import typing
from typing import Any


def protocol_members(proto: type) -> set[str]:
    """The attribute names a protocol declares (its bases' included)."""
    attrs = getattr(proto, "__protocol_attrs__", None)  # Python >= 3.12
    if attrs is None:
        attrs = typing._get_protocol_attrs(proto)  # type: ignore[attr-defined]
    return set(attrs)


def _declared(proto: type, name: str) -> Any:
    for klass in proto.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _compatible(expected: inspect.Signature, actual: inspect.Signature) -> str | None:
    """Why a method with ``actual`` cannot be called as ``expected`` says (None: it can)."""
    params = list(actual.parameters.values())
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    has_var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    by_name = {p.name: p for p in params}
    for want in list(expected.parameters.values())[1:]:  # past self
        got = by_name.get(want.name)
        if got is None:
            if not (has_var_kw or (want.kind is want.POSITIONAL_ONLY and has_var_pos)):
                return f"no parameter {want.name!r}"
            continue
        if want.default is not inspect.Parameter.empty and got.default is inspect.Parameter.empty:
            return f"parameter {want.name!r} needs a default"
    wanted = set(list(expected.parameters)[1:])
    for got in params[1:]:
        extra = got.name not in wanted and got.kind not in (got.VAR_POSITIONAL, got.VAR_KEYWORD)
        if extra and got.default is inspect.Parameter.empty:
            return f"extra required parameter {got.name!r}"
    return None


def protocol_mismatches(obj: Any, proto: type) -> list[str]:
    """What ``obj`` lacks of ``proto`` (empty when it implements it)."""
    problems: list[str] = []
    for name in sorted(protocol_members(proto)):
        try:
            impl = inspect.getattr_static(obj, name)
        except AttributeError:
            problems.append(f"{name}: missing")
            continue
        declared = _declared(proto, name)
        if inspect.isfunction(declared):
            method = getattr(type(obj), name, None)
            if not callable(method):
                problems.append(f"{name}: not a method")
                continue
            why = _compatible(inspect.signature(declared), inspect.signature(method))
            if why:
                problems.append(f"{name}: {why}")
        elif isinstance(declared, property) and inspect.isfunction(impl):
            problems.append(f"{name}: a method where the protocol has a property")
    return problems
