"""Read a Dockerfile into build stages: the image builder (:mod:`devtools.images`) follows its steps one by one.

Only the instructions ``operator/Dockerfile`` uses are understood, so the Dockerfile stays the single source of
truth of the product image: ``FROM image [AS name]``, ``WORKDIR``, ``COPY [--from=stage] src... dest``, ``RUN``
(shell or JSON form), ``ENV k=v ...`` (and the legacy ``ENV k v``), ``USER`` and ``ENTRYPOINT`` / ``CMD`` (JSON
or shell form). Anything else raises :class:`DockerfileError`, so a new instruction cannot be silently skipped.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DockerfileError", "Stage", "Step", "parse_dockerfile", "resolve_dest"]

StepKind = Literal["WORKDIR", "COPY", "RUN", "ENV", "USER", "ENTRYPOINT", "CMD"]
_KINDS: frozenset[str] = frozenset({"WORKDIR", "COPY", "RUN", "ENV", "USER", "ENTRYPOINT", "CMD"})


class DockerfileError(ValueError):
    """The Dockerfile uses an instruction or a form this builder does not implement (message names the line)."""


@dataclass(frozen=True)
class Step:
    """One instruction after ``FROM``.

    ``args`` by kind: WORKDIR ``(path,)``; COPY ``(src..., dest)`` with ``from_stage`` set for ``--from``;
    RUN/ENTRYPOINT/CMD the argv (a shell form becomes ``("/bin/sh", "-c", text)``); ENV ``("K=V", ...)``;
    USER ``(user,)``. ``line`` is the 1-based line number where the instruction starts.
    """

    kind: StepKind
    args: tuple[str, ...]
    line: int
    from_stage: str | None = None


@dataclass
class Stage:
    """A ``FROM`` and the steps up to the next one. ``name`` is the ``AS`` name or the stage's index as text."""

    base: str
    name: str
    steps: list[Step] = field(default_factory=list)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, drop comments and blank lines; return ``(first line number, text)``."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored, as Docker does
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(b for b in buf if b)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


def _argv(rest: str, line: int) -> tuple[str, ...]:
    """Exec (JSON array) form as is; shell form wrapped in ``/bin/sh -c``."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise DockerfileError(f"line {line}: bad JSON array: {rest}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DockerfileError(f"line {line}: exec form must be a JSON array of strings")
        return tuple(value)
    return ("/bin/sh", "-c", rest)


def _env_pairs(rest: str, line: int) -> tuple[str, ...]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise DockerfileError(f"line {line}: ENV needs a value")
        return (f"{words[0]}={rest.split(None, 1)[1].strip()}",)  # legacy form: ENV KEY rest of line
    if not all("=" in w for w in words):
        raise DockerfileError(f"line {line}: ENV mixes KEY=VALUE and KEY VALUE forms")
    return tuple(words)


def parse_dockerfile(text: str) -> list[Stage]:
    """Parse Dockerfile ``text`` into its stages, in order.

    Raises :class:`DockerfileError` for an unknown instruction, an instruction before ``FROM``, a COPY flag other
    than ``--from``, or ``--from`` naming a stage that does not come earlier.
    """
    stages: list[Stage] = []
    for line, content in _logical_lines(text):
        word, _, rest = content.partition(" ")
        kind, rest = word.upper(), rest.strip()
        if kind == "FROM":
            parts = rest.split()
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.append(Stage(parts[0], parts[2]))
            elif len(parts) == 1:
                stages.append(Stage(parts[0], str(len(stages))))
            else:
                raise DockerfileError(f"line {line}: FROM image [AS name] expected, got {rest!r}")
            continue
        if not stages:
            raise DockerfileError(f"line {line}: {kind} before FROM")
        if kind not in _KINDS:
            raise DockerfileError(f"line {line}: instruction {kind} is not implemented by devtools.dockerfile")
        stage = stages[-1]
        if kind == "COPY":
            words = shlex.split(rest)
            from_stage = None
            while words and words[0].startswith("--"):
                flag = words.pop(0)
                if not flag.startswith("--from="):
                    raise DockerfileError(f"line {line}: COPY flag {flag} is not implemented")
                from_stage = flag.split("=", 1)[1]
                if from_stage not in {s.name for s in stages[:-1]}:
                    raise DockerfileError(f"line {line}: COPY --from={from_stage}: no earlier stage of that name")
            if len(words) < 2:
                raise DockerfileError(f"line {line}: COPY needs a source and a destination")
            stage.steps.append(Step("COPY", tuple(words), line, from_stage))
        elif kind in ("RUN", "ENTRYPOINT", "CMD"):
            stage.steps.append(Step(kind, _argv(rest, line), line))  # type: ignore[arg-type]
        elif kind == "ENV":
            stage.steps.append(Step("ENV", _env_pairs(rest, line), line))
        else:  # WORKDIR, USER
            stage.steps.append(Step(kind, (rest,), line))  # type: ignore[arg-type]
    if not stages:
        raise DockerfileError("no FROM instruction")
    return stages


def resolve_dest(workdir: str, dest: str, source_count: int, source_is_dir: bool) -> tuple[str, bool]:
    """Where a COPY source lands: ``(absolute path, into_directory)``.

    ``dest`` is relative to ``workdir`` unless absolute. A destination ending in ``/`` (or ``.``), or several
    sources, means "into this directory"; a single directory source copies its *contents* to ``dest``.
    """
    path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    into = dest.endswith("/") or dest in (".", "./") or source_count > 1
    if source_is_dir:
        into = False
    return posixpath.normpath(path), into
