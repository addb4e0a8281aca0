"""``game-analytics render -f FILE``: the children the operator would create, printed as YAML, with no cluster.

Like ``helm template``: every custom resource of this API in FILE (multi-document YAML; ``-`` is stdin; ``-f`` may
repeat) goes through its kind's real planner (:data:`game_analytics.controller.kinds.PLANNERS`) against
:class:`FileCluster`, which answers look-ups from the other documents of the same files (a GameDataSource, its
RedisFailover, a Secret ...). Objects of other APIs are context only and are not printed. Every PrometheusRule
rendered is checked whole (:func:`game_analytics.monitoring.rulecheck.check_groups`) and, when ``promtool`` is on
PATH, by ``promtool check rules`` too. Operator-wide defaults (images, monitoring labels) come from the same
environment variables the operator reads (:meth:`game_analytics.config.Images.from_env`).

Exit status: 0 and the children on stdout; 2 when a spec is invalid or a rendered rule would be refused (the
message names the field); 1 when only references are unresolved (the message names the reference). On any
error nothing is printed on stdout, so ``game-analytics render -f x.yaml | kubectl apply -f -`` applies all or
nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from ..api import KINDS_BY_NAME
from ..api.common import GROUP
from ..config import Images
from ..validation import SpecError
from .common.plan import DependencyError, parse
from .common.render import Manifest, Owner
from .kinds import PLANNERS

EXIT_UNRESOLVED = 1
EXIT_INVALID = 2


class FileCluster:
    """A read-only stand-in for :class:`~game_analytics.controller.k8s.Cluster` over a list of manifests.

    ``get`` finds a document by apiVersion, kind, namespace and name (None when absent, like a 404); ``list``
    filters by an equality label selector (``a=b,c=d``); every API is served. Nothing is ever written.
    """

    #: Secrets are rarely in the files rendered, so the planners do not check that referenced Secrets exist
    #: (:func:`~game_analytics.controller.common.plan.check_secrets`).
    checks_secrets = False

    def __init__(self, documents: Iterable[dict]):
        self.documents = list(documents)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        """The document ``kind`` ``namespace/name`` of ``api_version``, or None."""
        for doc in self.documents:
            meta = doc.get("metadata") or {}
            if (doc.get("apiVersion"), doc.get("kind"), meta.get("namespace"), meta.get("name")) == (
                    api_version, kind, namespace, name):
                return doc
        return None

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict]:
        """Documents of ``kind`` in ``namespace`` whose labels match every ``key=value`` of ``label_selector``."""
        wanted = dict(term.split("=", 1) for term in label_selector.split(",") if "=" in term)
        return [d for d in self.documents if d.get("apiVersion") == api_version and d.get("kind") == kind
                and (d.get("metadata") or {}).get("namespace") == namespace
                and wanted.items() <= ((d.get("metadata") or {}).get("labels") or {}).items()]

    def names(self, api_version: str, kind: str, namespace: str) -> list[str]:
        """Names of the documents of ``kind`` in ``namespace``."""
        return [d["metadata"]["name"] for d in self.list(api_version, kind, namespace, "")]

    def serves(self, api_version: str, ttl: float = 60.0) -> bool:
        """Every API counts as served: the output is what a cluster with prometheus-operator would get."""
        return True


def load_documents(paths: Sequence[str], namespace: str) -> list[dict]:
    """The non-empty YAML documents of ``paths`` (``-`` = stdin), each with ``metadata.namespace`` defaulted.

    Raises:
        OSError: a file cannot be read. yaml.YAMLError: a file is not YAML.
    """
    docs = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc:
                doc.setdefault("metadata", {}).setdefault("namespace", namespace)
                docs.append(doc)
    return docs


def promtool_problems(groups: list[dict], promtool: str | None = None) -> str | None:
    """``promtool check rules`` output when it refuses ``groups``; None when it accepts or is not on PATH."""
    promtool = promtool or shutil.which("promtool")
    if not promtool:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                                timeout=60, check=False)
    return None if result.returncode == 0 else (result.stdout + result.stderr).replace(str(path), "rules").strip()


def render_one(body: dict, cluster: FileCluster, images: Images) -> list[Manifest]:
    """The children of one custom resource, PrometheusRules checked.

    Raises:
        SpecError: the spec is invalid, or a rendered PrometheusRule would be refused (field named).
        DependencyError: a reference is not among the documents.
    """
    info = KINDS_BY_NAME[body["kind"]]
    owner = Owner.from_body({**body, "metadata": {"generation": 1, **body["metadata"]}})
    spec = parse(info, body)
    children = PLANNERS[info.kind](owner, spec, cluster, images, body=body).children
    for child in children:
        if child.get("kind") != "PrometheusRule":
            continue
        # the AlertRule planner already checked the rule whole (monitoring/rulecheck.py); promtool is the second opinion
        groups = child["spec"]["groups"]
        refused = promtool_problems(groups)
        if refused:
            raise SpecError(f"PrometheusRule {child['metadata']['name']}", f"promtool check rules: {refused}")
    return children


def render_documents(docs: list[dict], images: Images) -> tuple[list[tuple[str, list[Manifest]]], list[str], int]:
    """``([(source, children)], errors, exit status)`` for every custom resource of this API among ``docs``."""
    cluster = FileCluster(docs)
    rendered, errors, status = [], [], 0
    for body in docs:
        if body.get("kind") not in KINDS_BY_NAME or not str(body.get("apiVersion", "")).startswith(f"{GROUP}/"):
            continue
        source = f"{body['kind']} {body['metadata']['namespace']}/{body['metadata'].get('name')}"
        try:
            rendered.append((source, render_one(body, cluster, images)))
        except SpecError as exc:
            errors.append(f"{source}: invalid spec: {exc}")
            status = EXIT_INVALID
        except DependencyError as exc:
            errors.append(f"{source}: unresolved reference ({exc.reason}): {exc.message}; "
                          "add the referenced object to the file")
            status = status or EXIT_UNRESOLVED
    return rendered, errors, status


def to_yaml(rendered: list[tuple[str, list[Manifest]]]) -> str:
    """Multi-document YAML of every child, each preceded by a comment naming the resource it comes from."""
    out = []
    for source, children in rendered:
        for child in children:
            out.append(f"---\n# from {source}\n" + yaml.safe_dump(child, sort_keys=False))
    return "".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="game-analytics render", description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--filename", action="append", required=True,
                        help="YAML file of custom resources (multi-document; '-' for stdin); may repeat")
    parser.add_argument("-n", "--namespace", default="default",
                        help="namespace of documents that name none (default: default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics render``; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        docs = load_documents(args.filename, args.namespace)
    except (OSError, yaml.YAMLError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return EXIT_INVALID
    rendered, errors, status = render_documents(docs, Images.from_env())
    if errors:
        for error in errors:
            print(f"render: {error}", file=sys.stderr)
        return status
    if not rendered:
        print(f"render: no {GROUP} resources in {', '.join(args.filename)}", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(to_yaml(rendered))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
