"""Expanding Prometheus alert templates (Go ``text/template``) the way Prometheus' rule manager does, for the
subset the AlertRule pages use, so that the detection worker's streaming alerts carry the same annotations
the generated PrometheusRule gives Prometheus.

Supported: text; ``{{ ... }}`` actions with trim markers (``{{-``, ``-}}``) and comments; ``if`` / ``with`` /
``range`` with ``else`` and ``end``; pipelines ``a | f``; operands ``$value``, ``$labels.NAME``,
``$externalLabels.NAME``, ``$externalURL``, ``.``, ``.Labels.NAME``, ``.Value``, string (``"..."``, raw
```...```) and number literals; functions ``query``, ``first``, ``sortByLabel``, ``label``, ``value``, ``humanize``,
``toUpper``, ``toLower``, ``title``, ``len``, ``printf`` (``%s``, ``%d``, ``%v``, ``%f`` with precision),
``not``, ``eq``, ``ne``.  ``query`` is answered by the caller (:func:`expand`'s ``query``), because only the
caller knows which series it holds.

Anything else raises :class:`TemplateError`; like Prometheus, :func:`expand_or_error` then puts
``<error expanding template: ...>`` into the value instead of failing the alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sample", "TemplateError", "expand", "expand_or_error"]


class TemplateError(ValueError):
    """The template uses something outside the supported subset, or does not parse; ``str()`` says what."""


@dataclass(frozen=True)
class Sample:
    """One element of a ``query`` result: ``.Labels`` and ``.Value``, as in Prometheus' template data."""

    Labels: Mapping[str, str] = field(default_factory=dict)  # noqa: N815 - Prometheus' field names
    Value: float = 0.0  # noqa: N815


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|\.[A-Za-z0-9_.]*|'
                    r"[A-Za-z_][A-Za-z0-9_]*|[-+]?[0-9][0-9.eE+-]*|\||\(|\))")


def _parse(text: str) -> list[Any]:
    """Nodes: ``str`` (text) or ``(keyword, argument)`` actions, block structure resolved into nested lists."""
    flat: list[Any] = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        flat.append(chunk)
        inner = m.group(2).strip()
        if not inner.startswith("/*"):
            flat.append(("action", inner))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    if "{{" in text[pos:]:
        raise TemplateError("unclosed action")
    flat.append(text[pos:])
    tree, rest = _block(flat, 0, top=True)
    return tree


def _block(flat: list[Any], i: int, top: bool = False) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(flat):
        node = flat[i]
        if isinstance(node, str):
            out.append(node)
            i += 1
            continue
        word, _, arg = node[1].partition(" ")
        if word in ("end", "else"):
            if top:
                raise TemplateError(f"unexpected {{{{{word}}}}}")
            return out, i
        if word in ("if", "with", "range"):
            body, i = _block(flat, i + 1)
            otherwise: list[Any] = []
            if flat[i][1] == "else":
                otherwise, i = _block(flat, i + 1)
            if i >= len(flat) or flat[i][1] != "end":
                raise TemplateError(f"{word} without end")
            out.append((word, arg.strip(), body, otherwise))
            i += 1
            continue
        if word in ("define", "template", "block", "break", "continue") or ":=" in node[1] or "=" in word:
            raise TemplateError(f"unsupported action {{{{{node[1]}}}}}")
        out.append(("pipe", node[1]))
        i += 1
    if not top:
        raise TemplateError("block without end")
    return out, i


def _humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    for factor, prefix in ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"),
                           (1e3, "k"), (1, "")):  # fmt: skip
        if abs(v) >= factor:
            return f"{v / factor:.4g}{prefix}"
    for factor, prefix in ((1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(v) >= factor:
            return f"{v / factor:.4g}{prefix}"
    return f"{v:.4g}"


def _printf(fmt: str, *args: Any) -> str:
    py = re.sub(r"%v", "%s", fmt)
    try:
        return py % tuple(args)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"printf {fmt!r}: {exc}") from None


def _fmt(value: Any) -> str:
    """Go's ``%v``: integral floats without a fraction (``3``), others in their shortest form."""
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if not math.isnan(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Scope:
    def __init__(self, labels: Mapping[str, str], value: float, external_labels: Mapping[str, str],
                 external_url: str, query: Callable[[str], Sequence[Sample]] | None) -> None:  # fmt: skip
        self.vars = {"$value": value, "$labels": dict(labels), "$externalLabels": dict(external_labels),
                     "$externalURL": external_url}
        self.vars["$"] = {"Labels": self.vars["$labels"], "Value": value}
        self.query = query

    def functions(self) -> dict[str, Callable[..., Any]]:
        def query(expr: str) -> list[Sample]:
            if self.query is None:
                raise TemplateError("query is not available here")
            return list(self.query(expr))

        return {
            "query": query,
            "first": lambda xs: xs[0] if xs else None,
            "sortByLabel": lambda name, xs: sorted(xs, key=lambda x: x.Labels.get(name, "")),
            "label": lambda name, s: (s.Labels if isinstance(s, Sample) else {}).get(name, ""),
            "value": lambda s: s.Value if isinstance(s, Sample) else s,
            "humanize": lambda v: _humanize(float(v)),
            "toUpper": lambda s: str(s).upper(), "toLower": lambda s: str(s).lower(),
            "title": lambda s: str(s).title(), "len": len, "printf": _printf,
            "not": lambda v: not _truth(v), "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
        }


def _truth(value: Any) -> bool:
    return bool(value) and value != 0


def _field(value: Any, path: list[str]) -> Any:
    for name in path:
        if isinstance(value, Sample):
            value = {"Labels": value.Labels, "Value": value.Value}
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {name} of {type(value).__name__}")
        value = value.get(name)
        if value is None:
            return None
    return value


def _operand(token: str, scope: _Scope, dot: Any) -> Any:
    if token.startswith('"'):
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    if token.startswith("`"):
        return token[1:-1]
    if token.startswith("$"):
        name, *path = token.split(".")
        if name not in scope.vars:
            raise TemplateError(f"undefined variable {name}")
        return _field(scope.vars[name], path)
    if token.startswith("."):
        return dot if token == "." else _field(dot, token[1:].split("."))
    if re.fullmatch(r"[-+]?[0-9][0-9.eE+-]*", token):
        return float(token) if any(c in token for c in ".eE") else int(token)
    if token in ("true", "false"):
        return token == "true"
    raise TemplateError(f"function {token!r} not supported")


def _pipeline(text: str, scope: _Scope, dot: Any, final: Any = ...) -> Any:
    tokens = [t for t in _TOKEN.findall(text) if t]
    if "".join(tokens).replace(" ", "") != text.replace(" ", "").replace("\t", "").replace("\n", ""):
        raise TemplateError(f"cannot parse {{{{{text}}}}}")
    if "(" in tokens:
        raise TemplateError(f"parentheses are not supported: {{{{{text}}}}}")
    commands, current = [], []
    for tok in tokens:
        if tok == "|":
            commands.append(current)
            current = []
        else:
            current.append(tok)
    commands.append(current)
    functions = scope.functions()
    result: Any = final
    for command in commands:
        if not command:
            raise TemplateError(f"empty command in {{{{{text}}}}}")
        head, *args = command
        if head in functions:
            values = [_operand(a, scope, dot) for a in args] + ([] if result is ... else [result])
            try:
                result = functions[head](*values)
            except TemplateError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad argument, as Go's template reports it
                raise TemplateError(f"error calling {head}: {exc}") from None
        elif args or result is not ...:
            raise TemplateError(f"{head} is not a function: {{{{{text}}}}}")
        else:
            result = _operand(head, scope, dot)
    return result


def _render(nodes: list[Any], scope: _Scope, dot: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "pipe":
            out.append(_fmt(_pipeline(node[1], scope, dot)))
        else:
            kind, arg, body, otherwise = node
            value = _pipeline(arg, scope, dot)
            if kind == "range":
                items = list(value.values() if isinstance(value, Mapping) else value or [])
                for item in items:
                    _render(body, scope, item, out)
                if not items:
                    _render(otherwise, scope, dot, out)
            elif _truth(value):
                _render(body, scope, value if kind == "with" else dot, out)
            else:
                _render(otherwise, scope, dot, out)


def expand(text: str, labels: Mapping[str, str], value: float, *, external_labels: Mapping[str, str] = {},
           external_url: str = "", query: Callable[[str], Sequence[Sample]] | None = None) -> str:  # noqa: B006
    """``text`` expanded with Prometheus' alert template data: ``$labels`` (the alert's series labels), ``$value``
    (its value), ``$externalLabels``, ``$externalURL``; ``query(expr)`` answers the ``query`` function.

    Raises:
        TemplateError: the template does not parse or uses something outside the supported subset.
    """
    if "{{" not in text:
        return text
    scope = _Scope(labels, value, external_labels, external_url, query)
    out: list[str] = []
    _render(_parse(text), scope, scope.vars["$"], out)
    return "".join(out)


def expand_or_error(name: str, text: str, labels: Mapping[str, str], value: float, **kwargs: Any) -> str:
    """:func:`expand`, or Prometheus' ``<error expanding template: ...>`` text when it raises."""
    try:
        return expand(text, labels, value, **kwargs)
    except TemplateError as exc:
        return f"<error expanding template: template: __alert_{name}: {exc}>"
