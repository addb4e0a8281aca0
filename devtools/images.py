"""Container images for the node tier, built without a registry or a container engine.

Every image is a Debian root filesystem (``hack/images/rootfs.sh``: mmdebstrap from the mirror apt is configured
with) packed as a one-layer OCI layout tarball by umoci (``hack/images/pack.sh``), then imported into the node's
containerd (:func:`import_images`, ``ctr -n k8s.io images import``). The images and the names they are imported
under (the names the chart and :class:`game_analytics.config.Images` render, so no value needs changing):

==========  ==============================================  ====================================================
key         imported as (default)                           built from
==========  ==============================================  ====================================================
product     ghcr.io/game-analytics/game-analytics:<version>  ``operator/Dockerfile``, step by step
                                                            (:mod:`devtools.dockerfile`); ``python:3.11-slim`` is
                                                            Debian's python3.11 as a venv at ``/usr/local``
pause       localhost/game-analytics/pause:1                 Debian busybox-static (containerd's sandbox_image)
redis       docker.io/library/redis:7.4-alpine               Debian redis-server, redis-sentinel, redis-tools
exporter    docker.io/oliver006/redis_exporter:v1.67.0       Debian prometheus-redis-exporter
postgres    localhost/game-analytics/postgres:15             Debian postgresql-15
==========  ==============================================  ====================================================

The Redis and exporter images are stand-ins under the upstream names: Debian's versions (redis 7.0, exporter
1.45) behave alike for what the operator renders (``redis-server``, ``redis-cli``, POSIX ``sh``, the exporter's
``REDIS_ADDR``/``REDIS_PASSWORD`` environment).

Cache: ``$GA_IMAGE_CACHE`` (default ``~/.cache/game-analytics/images``, shared by every clone on the machine like
the node binaries). An image tarball is named by a digest of all its inputs (recipe, Dockerfile text, the bytes of
every file its COPY steps read, the builder scripts, the apt sources and suite), so a change to any of them
rebuilds it and nothing else does (this module itself counts through :data:`BUILDER_VERSION`). Unpinned PyPI
dependencies are *not* part of the key. The :data:`KEEP_BUILDS` most recently built or used tarballs of each image
are kept (:func:`prune`), so checkouts with different inputs sharing the cache do not evict each other's.

Command line::

    python -m devtools.images build [KEY...]        # build (or find cached) images; prints "KEY NAME TAR"
    python -m devtools.images list
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devtools.dockerfile import Stage, parse_dockerfile, resolve_dest

__all__ = [
    "BASES",
    "DebianBase",
    "ImageBuildError",
    "ImageRecipe",
    "build_image",
    "build_images",
    "build_record",
    "cache_dir",
    "cache_key",
    "catalog",
    "import_images",
    "normalize_reference",
    "prune",
    "tarball_path",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
HACK = REPO_ROOT / "hack" / "images"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Files a COPY from the build context never takes (what a .dockerignore would name).
CONTEXT_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".ruff_cache")
PAUSE_IMAGE = "localhost/game-analytics/pause:1"
#: Part of every cache key: bump it when a change here alters what an image contains (docs and refactors do not).
BUILDER_VERSION = 1
PAUSE_ENTRYPOINT = ("/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done")


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the image, the step and the end of its output."""


@dataclass(frozen=True)
class DebianBase:
    """The Debian stand-in for a base image a Dockerfile names in ``FROM``.

    ``packages`` go on top of minbase; ``setup`` are shell commands run as root in the new root filesystem;
    ``env`` is the base image's own environment (``KEY=VALUE``).
    """

    packages: tuple[str, ...]
    setup: tuple[str, ...] = ()
    env: tuple[str, ...] = ()


#: Base images by the reference a Dockerfile's FROM uses. python:3.11-slim keeps Python under /usr/local (so
#: ``pip install --prefix=/install`` plus ``COPY /install /usr/local`` works as upstream): here /usr/local is a
#: venv of Debian's python3.11 (bookworm), with pip from ensurepip.
BASES: dict[str, DebianBase] = {
    "python:3.11-slim": DebianBase(
        packages=("python3-venv", "ca-certificates"),
        setup=(
            'python3 -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"',
            "python3 -m venv /usr/local",
            "rm -f /usr/local/bin/activate /usr/local/bin/activate.csh /usr/local/bin/activate.fish"
            " /usr/local/bin/Activate.ps1",
        ),
        env=(f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"),
    ),
}


@dataclass(frozen=True)
class ImageRecipe:
    """How one image is made.

    ``name``: the full reference it is imported under (see :func:`normalize_reference`). Either ``dockerfile``
    (path relative to the repository root; the context is the repository root) or Debian ``packages`` with the
    image config ``entrypoint``, ``user``, ``env`` and ``links`` (symlink path -> target, made in the rootfs);
    ``rootfs_script`` replaces mmdebstrap (the pause image).
    """

    key: str
    name: str
    dockerfile: str | None = None
    packages: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    user: str = ""
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    links: tuple[tuple[str, str], ...] = ()
    rootfs_script: str = "rootfs.sh"
    optional: bool = field(default=False, compare=False)


def normalize_reference(ref: str) -> str:
    """The fully qualified name containerd's CRI resolves ``ref`` to (``redis:7`` -> ``docker.io/library/redis:7``).

    A reference without a tag gets ``:latest``. Digests (``@sha256:``) are not supported: ``ValueError``.
    """
    if "@" in ref:
        raise ValueError(f"digest references are not supported: {ref}")
    first, _, rest = ref.partition("/")
    if not rest:
        ref = f"docker.io/library/{ref}"
    elif "." not in first and ":" not in first and first != "localhost":
        ref = f"docker.io/{ref}"
    last = ref.rsplit("/", 1)[1]
    return ref if ":" in last else f"{ref}:latest"


def catalog(worker: str | None = None, redis: str | None = None, redis_exporter: str | None = None) -> list[ImageRecipe]:
    """The node tier's images, named as the operator's :class:`~game_analytics.config.Images` defaults render them
    (each overridable). The chart's operator image is the same product image (repository + appVersion)."""
    from game_analytics.config import Images

    d = Images()
    return [
        ImageRecipe("product", normalize_reference(worker or d.worker), dockerfile="operator/Dockerfile"),
        ImageRecipe("pause", PAUSE_IMAGE, entrypoint=PAUSE_ENTRYPOINT, user="65534:65534",
                    rootfs_script="pause-rootfs.sh", env=("PATH=/bin",)),
        ImageRecipe("redis", normalize_reference(redis or d.redis),
                    packages=("redis-server", "redis-sentinel", "redis-tools"),
                    links=(("/usr/local/bin/redis-server", "/usr/bin/redis-server"),
                           ("/usr/local/bin/redis-cli", "/usr/bin/redis-cli"))),
        ImageRecipe("exporter", normalize_reference(redis_exporter or d.redis_exporter),
                    packages=("prometheus-redis-exporter",), entrypoint=("/redis_exporter",), user="59000:59000",
                    links=(("/redis_exporter", "/usr/bin/prometheus-redis-exporter"),)),
        ImageRecipe("postgres", "localhost/game-analytics/postgres:15", packages=("postgresql-15",),
                    env=(f"PATH=/usr/lib/postgresql/15/bin:{DEFAULT_PATH}",), optional=True),
    ]


def cache_dir() -> Path:
    """``$GA_IMAGE_CACHE`` or ``~/.cache/game-analytics/images`` (``$XDG_CACHE_HOME`` honoured)."""
    env = os.environ.get("GA_IMAGE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "game-analytics" / "images"


# --------------------------------------------------------------------------------------------
# Cache keys


def _digest_tree(h: hashlib._Hash, root: Path, rel: str) -> None:
    path = root / rel
    if path.is_file():
        h.update(f"F {rel} {path.stat().st_mode & 0o777:o}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
        return
    if not path.is_dir():
        raise ImageBuildError(f"COPY source {rel} does not exist in {root}")
    for dirpath, dirnames, filenames in os.walk(path):
        ignored = CONTEXT_IGNORE(dirpath, dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if d not in ignored)
        for name in sorted(f for f in filenames if f not in ignored):
            _digest_tree(h, root, os.path.relpath(os.path.join(dirpath, name), root))


def _host_inputs() -> str:
    """The apt sources and suite (they decide which Debian packages land in a root filesystem)."""
    parts = [Path("/etc/os-release").read_text(errors="replace")]
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.is_file() and p.suffix in (".list", ".sources"):
            parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


def _base_key(base: DebianBase) -> str:
    h = hashlib.sha256(json.dumps(asdict(base), sort_keys=True).encode())
    h.update((HACK / "rootfs.sh").read_bytes())
    h.update(_host_inputs().encode())
    return h.hexdigest()[:16]


def cache_key(recipe: ImageRecipe, root: Path = REPO_ROOT) -> str:
    """16 hex digits over everything the image is made from (see the module docstring)."""
    h = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True, default=str).encode())
    for script in sorted(HACK.glob("*.sh")):
        h.update(script.read_bytes())
    h.update(_host_inputs().encode())
    if recipe.dockerfile:
        text = (root / recipe.dockerfile).read_text()
        h.update(text.encode())
        h.update(f"builder {BUILDER_VERSION}".encode())
        h.update((Path(__file__).parent / "dockerfile.py").read_bytes())
        for stage in parse_dockerfile(text):
            h.update(_base_key(_base_for(stage)).encode())
            for step in stage.steps:
                if step.kind == "COPY" and step.from_stage is None:
                    for src in step.args[:-1]:
                        _digest_tree(h, root, src)
    return h.hexdigest()[:16]


def _base_for(stage: Stage) -> DebianBase:
    try:
        return BASES[stage.base]
    except KeyError:
        raise ImageBuildError(f"no Debian stand-in for base image {stage.base!r}: add it to devtools.images.BASES") from None


# --------------------------------------------------------------------------------------------
# Building


def _run(argv: Sequence[str], what: str, log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}); {log}:\n{tail}")


def _run_in_rootfs(rootfs: Path, argv: Sequence[str], *, workdir: str, user: str, env: Mapping[str, str],
                   what: str, log: Path) -> None:
    with tempfile.NamedTemporaryFile("wb", delete=False, prefix="ga-env-") as fh:
        fh.write(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
    try:
        _run(["bash", str(HACK / "run.sh"), str(rootfs), workdir, user, fh.name, "--", *argv], what, log)
    finally:
        os.unlink(fh.name)


def _base_rootfs(base: DebianBase, cache: Path, log: Path) -> Path:
    """The cached root filesystem of ``base`` (built on first use)."""
    target = cache / "bases" / _base_key(base)
    if (target / ".complete").exists():
        return target / "rootfs"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    _run(["bash", str(HACK / "rootfs.sh"), str(target / "rootfs"), *base.packages], "mmdebstrap", log)
    env = dict(kv.split("=", 1) for kv in base.env) | {"HOME": "/root"}
    for cmd in base.setup:
        _run_in_rootfs(target / "rootfs", ["/bin/sh", "-c", cmd], workdir="/", user="", env=env,
                       what=f"base setup {cmd!r}", log=log)
    (target / ".complete").touch()
    return target / "rootfs"


def _copy_into(src: Path, dest_root: Path, dest: str, *, into: bool) -> None:
    target = dest_root / dest.lstrip("/")
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True, ignore=CONTEXT_IGNORE)
        return
    if into:
        target.mkdir(parents=True, exist_ok=True)
        target = target / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, target, follow_symlinks=False)


@dataclass
class _StageState:
    rootfs: Path
    workdir: str = "/"
    user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def _build_stages(dockerfile: str, work: Path, cache: Path, log: Path, root: Path) -> _StageState:
    """Run the Dockerfile's stages in ``work``; return the last stage's state (its rootfs and image config)."""
    stages = parse_dockerfile((root / dockerfile).read_text())
    done: dict[str, _StageState] = {}
    state = None
    for stage in stages:
        base = _base_for(stage)
        rootfs = work / f"stage-{stage.name}"
        _run(["cp", "-a", str(_base_rootfs(base, cache, log)), str(rootfs)], f"FROM {stage.base}", log)
        state = _StageState(rootfs, env=dict(kv.split("=", 1) for kv in base.env))
        for step in stage.steps:
            where = f"{dockerfile}:{step.line} {step.kind}"
            if step.kind == "WORKDIR":
                state.workdir = resolve_dest(state.workdir, step.args[0], 1, True)[0]
                (rootfs / state.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
            elif step.kind == "ENV":
                state.env.update(kv.split("=", 1) for kv in step.args)
            elif step.kind == "USER":
                state.user = step.args[0]
            elif step.kind == "ENTRYPOINT":
                state.entrypoint = step.args
            elif step.kind == "CMD":
                state.cmd = step.args
            elif step.kind == "COPY":
                sources, dest = step.args[:-1], step.args[-1]
                origin = root if step.from_stage is None else done[step.from_stage].rootfs
                for src in sources:
                    path = origin / src.lstrip("/")
                    if not path.exists():
                        raise ImageBuildError(f"{where}: {src} does not exist")
                    target, into = resolve_dest(state.workdir, dest, len(sources), path.is_dir())
                    _copy_into(path, rootfs, target, into=into)
            elif step.kind == "RUN":
                env = {"HOME": "/root"} | state.env
                _run_in_rootfs(rootfs, step.args, workdir=state.workdir, user=state.user, env=env,
                               what=where, log=log)
        done[stage.name] = state
    assert state is not None
    return state


def _pack(state: _StageState, out: Path, tag: str, log: Path) -> None:
    config = [f"--config.env={k}={v}" for k, v in state.env.items()]
    config += [f"--config.entrypoint={a}" for a in state.entrypoint]
    config += [f"--config.cmd={a}" for a in state.cmd]
    if state.user:
        config.append(f"--config.user={state.user}")
    config.append(f"--config.workingdir={state.workdir}")
    _run(["bash", str(HACK / "pack.sh"), str(state.rootfs), str(out), tag, *config], "umoci pack", log)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def tarball_path(recipe: ImageRecipe, *, cache: Path | None = None, root: Path = REPO_ROOT) -> Path:
    """Where ``recipe``'s tarball is cached: ``<cache>/<name>-<key>.tar`` (it may not exist yet)."""
    stem = recipe.name.replace("/", "_").replace(":", "_")
    return (cache or cache_dir()) / f"{stem}-{cache_key(recipe, root)}.tar"


def build_record(recipe: ImageRecipe, *, cache: Path | None = None) -> dict | None:
    """The record written when ``recipe``'s cached tarball was built (name, key, seconds, bytes); ``None`` when
    the tarball for its current inputs is not cached (or was built before records were kept)."""
    meta = tarball_path(recipe, cache=cache).with_suffix(".json")
    try:
        return json.loads(meta.read_text()) if meta.with_suffix(".tar").exists() else None
    except (OSError, ValueError):
        return None


#: Tarballs kept per image name: clones (or a lead and an engineer's checkout) that share the cache with different
#: inputs each keep theirs, instead of rebuilding every time the other one built.
KEEP_BUILDS = 3


def prune(cache: Path, stem: str, keep: int = KEEP_BUILDS) -> list[Path]:
    """Delete all but the ``keep`` most recently built or used (modification time) ``<stem>-<key>.tar`` tarballs in ``cache`` and
    their ``.json`` records; return the tarballs deleted."""
    tarballs = sorted(cache.glob(f"{stem}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tarballs[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return tarballs[keep:]


def build_image(recipe: ImageRecipe, *, cache: Path | None = None, root: Path = REPO_ROOT,
                log: Path | None = None) -> Path:
    """Build ``recipe`` unless its tarball is cached; return the OCI layout tarball's path.

    Writes ``<name>-<key>.tar`` and a ``.json`` beside it (name, key, seconds, bytes) under :func:`cache_dir`.
    Needs root (mmdebstrap, chroot). Raises :class:`ImageBuildError` naming the failed step.
    """
    cache = cache or cache_dir()
    out = tarball_path(recipe, cache=cache, root=root)
    key, stem = out.stem.rsplit("-", 1)[1], out.stem.rsplit("-", 1)[0]
    log = log or cache / "logs" / f"{stem}.log"
    with _lock(cache / ".lock"):
        if out.exists():
            os.utime(out)  # most recently used: the last that prune() deletes
            return out
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".build-{recipe.key}-", dir=cache))
        try:
            if recipe.dockerfile:
                state = _build_stages(recipe.dockerfile, work, cache, log, root)
            else:
                rootfs = work / "rootfs"
                _run(["bash", str(HACK / recipe.rootfs_script), str(rootfs), *recipe.packages], recipe.key, log)
                for link, target in recipe.links:
                    (rootfs / link.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                    (rootfs / link.lstrip("/")).symlink_to(target)
                state = _StageState(rootfs, env=dict(kv.split("=", 1) for kv in recipe.env),
                                    user=recipe.user, entrypoint=recipe.entrypoint)
            _pack(state, out, recipe.name.rsplit(":", 1)[1], log)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        prune(cache, stem)
        meta = {"name": recipe.name, "key": key, "seconds": round(time.monotonic() - started, 1),
                "bytes": out.stat().st_size}
        out.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return out


def build_images(keys: Iterable[str] | None = None, recipes: Sequence[ImageRecipe] | None = None) -> dict[str, Path]:
    """Build (or find) the images named by ``keys`` (default: every non-optional one); ``{name: tarball}``."""
    recipes = list(recipes or catalog())
    wanted = set(keys) if keys else {r.key for r in recipes if not r.optional}
    unknown = wanted - {r.key for r in recipes}
    if unknown:
        raise ValueError(f"unknown images: {sorted(unknown)} (known: {[r.key for r in recipes]})")
    return {r.name: build_image(r) for r in recipes if r.key in wanted}


def import_images(tarballs: Mapping[str, Path], address: Path, *, ctr: str = "ctr", log: Path | None = None) -> None:
    """Import OCI tarballs into containerd at socket ``address``, namespace ``k8s.io``, as ``{name: tarball}``.

    Raises :class:`ImageBuildError` when ``ctr`` fails.
    """
    log = log or Path(tempfile.gettempdir()) / "ga-ctr-import.log"
    for name, tar in tarballs.items():
        repo = name.rsplit(":", 1)[0]
        _run([ctr, "--address", str(address), "-n", "k8s.io", "images", "import", "--base-name", repo, str(tar)],
             f"ctr images import {name}", log)


def main(argv: Sequence[str] | None = None) -> int:
    """``build [KEY...]`` / ``list``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m devtools.images", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or find cached) images; prints KEY NAME TARBALL")
    b.add_argument("keys", nargs="*", help="image keys (default: all but the optional ones)")
    sub.add_parser("list", help="the catalog with cache keys")
    args = parser.parse_args(argv)
    recipes = catalog()
    if args.command == "list":
        for r in recipes:
            print(f"{r.key:9} {r.name:48} {cache_key(r)}{' (optional)' if r.optional else ''}")
        return 0
    by_name = {r.name: r.key for r in recipes}
    try:
        for name, tar in build_images(args.keys or None, recipes).items():
            print(f"{by_name[name]} {name} {tar} ({tar.stat().st_size / 2**20:.0f} MiB)", flush=True)
    except (ImageBuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
