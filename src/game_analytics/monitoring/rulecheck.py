"""Whole-rule checks of Prometheus rule groups, as Prometheus' own rule loader (``rulefmt``) applies them.

``promtool check rules`` and Prometheus refuse a rule file when any rule in it is invalid; prometheus-operator
then drops the PrometheusRule. These checks run without promtool (the operator image has none) so that an
AlertRule whose rendered rule would be refused ends ``Ready=False`` instead of ``Ready=True`` and never loading:

* groups: a non-empty, unique ``name``; ``interval`` a Prometheus duration;
* rules: exactly one of ``alert``/``record``; ``expr`` parses (:func:`.promql.check`); ``for`` and
  ``keep_firing_for`` are durations; a recording rule's name is a metric name and it has no annotations;
* label names (labels and annotation keys) match ``[a-zA-Z_][a-zA-Z0-9_]*`` (the classic Prometheus name
  grammar, which every Prometheus version accepts; ``cost-center`` or ``app.kubernetes.io/part-of`` do not);
* label and annotation values parse as Prometheus alert templates (Go ``text/template``): actions are closed
  (``{{ $value`` is not), quoted strings end, ``if``/``range``/``with``/``define``/``block`` have their ``end``,
  functions are ones Prometheus defines and variables are declared.

Each problem is a :class:`Problem` whose ``path`` names the offending place in the group list, e.g.
``groups[0].rules[0].labels.cost-center``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..api.common import DURATION_PATTERN, PROMETHEUS_LABEL_NAME_PATTERN
from . import promql

_LABEL_NAME = re.compile(PROMETHEUS_LABEL_NAME_PATTERN)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_DURATION = re.compile(DURATION_PATTERN)

#: functions a Prometheus alert template may call: Go's builtins and Prometheus' template functions
TEMPLATE_FUNCTIONS = frozenset({
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery",
    "eq", "ge", "gt", "le", "lt", "ne",
    "query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match", "title",
    "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "humanize", "humanize1024",
    "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime", "toDuration", "pathPrefix",
    "externalURL", "parseDuration", "stripPort", "stripDomain", "now",
})
#: variables Prometheus declares before every alert template
TEMPLATE_VARIABLES = frozenset({"$", "$labels", "$externalLabels", "$externalURL", "$value"})
_OPENERS = frozenset({"if", "range", "with", "define", "block"})
_WORDS = frozenset({"else", "end", "template", "break", "continue", "true", "false", "nil"}) | _OPENERS
_TOKEN = re.compile(r"\$[A-Za-z0-9_]*|\.[A-Za-z0-9_.]*|[A-Za-z_][A-Za-z0-9_]*|[-+]?[0-9][0-9A-Za-z_.+-]*|:=|[=|(),]"
                    r"|\S")


class Problem(NamedTuple):
    """One reason Prometheus would refuse the rule file: where (``groups[0].rules[0].for``) and why."""

    path: str
    message: str


class TemplateError(ValueError):
    """A value that does not parse as a Prometheus alert template; ``str()`` says why."""


def _actions(text: str) -> Iterable[str]:
    """The inner text of every ``{{ ... }}`` action (trim markers and comments removed), in order.

    Raises:
        TemplateError: an action or a quoted string inside it is not closed.
    """
    i = 0
    while (start := text.find("{{", i)) >= 0:
        j = start + 2
        if text.startswith("- ", j) or text.startswith("-\t", j) or text.startswith("-\n", j):
            j += 1
        inner_start = j
        stripped = text[j:].lstrip()
        if stripped.startswith("/*"):  # a comment: {{/* ... */}}
            close = text.find("*/", j)
            end = text.find("}}", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise TemplateError("unclosed comment")
            i = end + 2
            continue
        while True:
            if j >= len(text):
                raise TemplateError(f"unclosed action starting at {text[start:start + 20]!r}")
            c = text[j]
            if c in "\"'`":
                close = j + 1
                while close < len(text) and text[close] != c:
                    if c != "`" and text[close] == "\\":
                        close += 1
                    elif c != "`" and text[close] == "\n":
                        break
                    close += 1
                if close >= len(text) or text[close] != c:
                    raise TemplateError(f"unterminated quoted string in action {text[start:start + 20]!r}")
                j = close + 1
                continue
            if text.startswith("}}", j):
                inner = text[inner_start:j]
                yield inner[:-1] if inner.endswith((" -", "\t-", "\n-")) else inner
                i = j + 2
                break
            j += 1


def _unquote(action: str) -> str:
    """``action`` with its string and character literals replaced by a placeholder token."""
    return re.sub(r'"(?:\\.|[^"\\])*"|`[^`]*`|\'(?:\\.|[^\'\\])*\'', " 0 ", action)


def check_template(text: str) -> None:
    """Parse ``text`` as a Prometheus alert template (label or annotation value).

    Raises:
        TemplateError: unclosed action or string, empty action, unbalanced parentheses, ``else``/``end`` without
            a block or a block without ``end``, an unknown function or an undeclared variable.
    """
    stack: list[str] = []
    declared = set(TEMPLATE_VARIABLES)
    for action in _actions(text):
        tokens = _TOKEN.findall(_unquote(action))
        if not tokens:
            raise TemplateError("missing value for command in {{}}")
        depth = 0
        for tok in tokens:
            depth += (tok == "(") - (tok == ")")
            if depth < 0:
                raise TemplateError(f"unexpected ')' in {{{{{action}}}}}")
        if depth:
            raise TemplateError(f"unclosed '(' in {{{{{action}}}}}")
        head = tokens[0]
        if head in _OPENERS:
            stack.append(head)
        elif head == "else":
            if not stack or stack[-1] not in ("if", "with", "range"):
                raise TemplateError("unexpected {{else}}")
        elif head == "end":
            if not stack:
                raise TemplateError("unexpected {{end}}")
            stack.pop()
        for k, tok in enumerate(tokens):
            if tok.startswith("$"):
                name = tok.split(".", 1)[0]
                if k + 1 < len(tokens) and tokens[k + 1] in (":=", "=", ","):
                    declared.add(name)
                elif name not in declared:
                    raise TemplateError(f"undefined variable {name!r}")
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tok) and tok not in _WORDS and tok not in TEMPLATE_FUNCTIONS:
                raise TemplateError(f"function {tok!r} not defined")
    if stack:
        raise TemplateError(f"unexpected EOF: {{{{{stack[-1]}}}}} has no {{{{end}}}}")


def _check_names(mapping: Any, where: str, kind: str) -> list[Problem]:
    problems = []
    for key, value in (mapping or {}).items():
        if not isinstance(key, str) or not _LABEL_NAME.match(key) or key == "__name__":
            problems.append(Problem(f"{where}.{key}", f"invalid {kind} name {key!r}: Prometheus {kind} names must "
                                                      f"match {PROMETHEUS_LABEL_NAME_PATTERN}"))
            continue
        if not isinstance(value, str):
            problems.append(Problem(f"{where}.{key}", f"{kind} value must be a string, got {value!r}"))
            continue
        try:
            check_template(value)
        except TemplateError as exc:
            problems.append(Problem(f"{where}.{key}", f"{kind} template does not parse: {exc}"))
    return problems


def _check_duration(rule: dict, key: str, where: str) -> list[Problem]:
    if key in rule and not _DURATION.match(str(rule[key])):
        return [Problem(f"{where}.{key}", f"{rule[key]!r} is not a Prometheus duration")]
    return []


def check_rule(rule: dict, where: str) -> list[Problem]:
    """Problems of one rule (``where`` prefixes every path, e.g. ``groups[0].rules[1]``)."""
    problems: list[Problem] = []
    alert, record = rule.get("alert"), rule.get("record")
    if bool(alert) == bool(record):
        problems.append(Problem(where, "exactly one of 'alert' and 'record' must be set"))
    if record and not _METRIC_NAME.match(str(record)):
        problems.append(Problem(f"{where}.record", f"invalid recording rule name {record!r}"))
    if record and (rule.get("annotations") or rule.get("for") or rule.get("keep_firing_for")):
        problems.append(Problem(where, "a recording rule has no annotations, 'for' or 'keep_firing_for'"))
    if not str(rule.get("expr") or "").strip():
        problems.append(Problem(f"{where}.expr", "field 'expr' must be set"))
    else:
        try:
            promql.check(str(rule["expr"]))
        except promql.InvalidPromQL as exc:
            problems.append(Problem(f"{where}.expr", f"does not parse: {exc}"))
    problems += _check_duration(rule, "for", where) + _check_duration(rule, "keep_firing_for", where)
    problems += _check_names(rule.get("labels"), f"{where}.labels", "label")
    problems += _check_names(rule.get("annotations"), f"{where}.annotations", "annotation")
    return problems


def check_groups(groups: list[dict]) -> list[Problem]:
    """Problems of a rule file's ``groups`` (a PrometheusRule's ``spec.groups``); empty when Prometheus would
    load it."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for g, group in enumerate(groups or []):
        where = f"groups[{g}]"
        name = group.get("name")
        if not name:
            problems.append(Problem(f"{where}.name", "group name must not be empty"))
        elif name in seen:
            problems.append(Problem(f"{where}.name", f"repeated group name {name!r}"))
        seen.add(name)
        problems += _check_duration(group, "interval", where)
        for r, rule in enumerate(group.get("rules") or []):
            problems += check_rule(rule, f"{where}.rules[{r}]")
    return problems
