"""The host-side half of building the course's images offline: preparing build contexts.

A recipe (``coursekit/docker/recipes/<name>/Dockerfile``) can only ``COPY``/``ADD`` what is in its
build context. Some recipes need files the host has to make first:

* ``busybox-static``: the statically linked ``busybox`` binary from Debian's
  ``busybox-static`` package (``/bin/busybox`` when that package is installed, otherwise
  ``apt-get download`` + ``dpkg-deb -x``);
* ``debootstrap <suite>``: a Debian root filesystem, ``rootfs.tar``, made with
  ``debootstrap --variant=minbase`` from the mirror in this machine's apt configuration,
  then slimmed the way the official Debian images are;
* a ``requirements.txt`` in the recipe: a ``wheels/`` folder filled on the host with
  ``pip download`` (pip over HTTPS inside a build container may not trust the network's
  TLS proxy; the host does).

Prepared contexts are cached in ``$COURSEKIT_CACHE/images`` (default
``~/.cache/coursekit/images``), keyed by the recipe's hash, so a rebuild is quick.
Used by :mod:`coursekit.docker.images`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ImageProvisioningError
from ..ui.progress import Progress



def cache_root() -> Path:
    """Where prepared build contexts live (``$COURSEKIT_CACHE/images``)."""
    return Path(os.environ.get("COURSEKIT_CACHE") or Path.home() / ".cache" / "coursekit") / "images"


def apt_root() -> Path:
    """The apt configuration to read the Debian mirror from (``COURSEKIT_APT_ROOT``, default /etc/apt)."""
    return Path(os.environ.get("COURSEKIT_APT_ROOT") or "/etc/apt")


def folder_hash(folder: Path) -> str:
    """A short hash of every file in a recipe folder (names and contents)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


# --------------------------------------------------------------------------- apt sources


@dataclass
class AptSource:
    uri: str
    suites: list[str]
    components: list[str] = field(default_factory=list)
    file: str = ""


def _one_line_sources(text: str, file: str) -> list[AptSource]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        rest = words[1:]
        if rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2:
            out.append(AptSource(rest[0].rstrip("/"), [rest[1]], rest[2:], file))
    return out


def _deb822_sources(text: str, file: str) -> list[AptSource]:
    out = []
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(AptSource(uri.rstrip("/"), fields.get("suites", "").split(),
                                 fields.get("components", "").split(), file))
    return out


def apt_sources(root: Path | None = None) -> list[AptSource]:
    """Every ``deb`` entry in the apt configuration (one-line ``.list`` and deb822 ``.sources``)."""
    root = Path(root or apt_root())
    files = [root / "sources.list"] + sorted((root / "sources.list.d").glob("*"))
    out: list[AptSource] = []
    for f in files:
        if not f.is_file() or f.suffix not in {".list", ".sources"}:
            continue
        text = f.read_text(errors="replace")
        out += (_deb822_sources if f.suffix == ".sources" else _one_line_sources)(text, str(f))
    return out


def _host_suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def debian_mirror(suite: str = "bookworm", root: Path | None = None) -> str:
    """The Debian archive mirror apt uses here for ``suite`` (security archives ignored)."""
    sources = [s for s in apt_sources(root) if "security" not in s.uri]
    for wanted in dict.fromkeys([suite, _host_suite()]):
        for s in sources:
            if wanted and wanted in s.suites:
                return s.uri
    raise ImageProvisioningError(
        f"no Debian mirror for '{suite}' is configured in apt ({Path(root or apt_root())}/sources.list, "
        "sources.list.d/*.list or *.sources), so the Debian image cannot be built offline",
        f"add your Debian mirror to apt, e.g. `deb http://<mirror>/debian {suite} main` in "
        "/etc/apt/sources.list, then run `coursekit images` again; or connect the engine to an image registry")


def image_sources(suite: str, root: Path | None = None) -> str:
    """The deb822 ``debian.sources`` the image gets: this machine's mirrors for the suite."""
    main = debian_mirror(suite, root)
    text = (f"Types: deb\nURIs: {main}\nSuites: {suite} {suite}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    security = [s for s in apt_sources(root) if f"{suite}-security" in s.suites]
    if security:
        text += (f"\nTypes: deb\nURIs: {security[0].uri}\nSuites: {suite}-security\nComponents: main\n"
                 "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return text


# --------------------------------------------------------------------------- helpers


def _run(cmd: list[str], *, what: str, log: Path, cwd: Path | None = None, fix: str = "") -> None:
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-12:])
        raise ImageProvisioningError(
            f"{what}: `{' '.join(cmd)}` failed (exit {rc}); its last lines:\n{tail}",
            fix or f"read the log above (all of it: {log}), fix the cause, then run `coursekit images` again")


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            end = "<" if head[5] == 1 else ">"
            (phoff,) = struct.unpack_from(end + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
            f.seek(phoff)
            return all(struct.unpack_from(end + "I", f.read(phentsize))[0] != 3 for _ in range(phnum))
    except (OSError, struct.error):
        return False


# --------------------------------------------------------------------------- preparers


def prepare_busybox(ctx: Path, *, what: str, log: Path, progress: Progress) -> None:
    """Put a static ``busybox`` binary into the build context."""
    host = Path("/bin/busybox")
    if _is_static_elf(host):
        progress(f"[{what}] prepare: copy the static {host} (Debian's busybox-static)")
        shutil.copy2(host, ctx / "busybox")
        return
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise ImageProvisioningError(
                f"{what}: no static busybox on this machine and no `{tool}` to fetch Debian's busybox-static",
                "install busybox-static (`apt-get install busybox-static`), or connect the engine to a registry")
    progress(f"[{what}] prepare: apt-get download busybox-static; dpkg-deb -x")
    work = ctx / ".busybox-deb"
    work.mkdir()
    _run(["apt-get", "download", "busybox-static"], what=what, log=log, cwd=work,
         fix="run `apt-get update` (apt needs its package lists), then `coursekit images` again")
    deb = next(work.glob("busybox-static_*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(work / "x")], what=what, log=log)
    shutil.copy2(work / "x" / "bin" / "busybox", ctx / "busybox")
    shutil.rmtree(work)


# What the official images' build (debuerreotype) adds so apt keeps images small.
_APT_CONF = {
    "etc/apt/apt.conf.d/docker-clean":
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    "etc/dpkg/dpkg.cfg.d/docker": "".join(f"path-exclude /usr/share/{d}/*\n" for d in
                                          ("doc", "man", "info", "groff", "lintian", "linda", "locale"))
    + "path-include /usr/share/doc/*/copyright\n",
    "usr/sbin/policy-rc.d": "#!/bin/sh\n# no services start while building an image\nexit 101\n",
}


def slim_rootfs(root: Path, sources: str) -> None:
    """Drop what a container never needs (apt lists, docs, man pages, locales, logs); add apt config."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "usr/share/man/*", "usr/share/info/*", "usr/share/groff/*", "usr/share/lintian/*",
                    "usr/share/linda/*", "usr/share/locale/*", "var/log/*.log", "var/log/apt/*",
                    "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "etc/hostname"):
        for p in root.glob(pattern):
            if p.name != "lock":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for doc in root.glob("usr/share/doc/*"):
        for p in sorted(doc.rglob("*"), reverse=True):
            if p.name != "copyright":
                with contextlib.suppress(OSError):  # a folder that still holds a copyright file stays
                    p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    for rel, text in _APT_CONF.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(sources)
    for rel in ("etc/resolv.conf", "etc/machine-id"):  # Docker provides these; don't ship the host's
        (root / rel).unlink(missing_ok=True)
        (root / rel).write_text("")


def _unmount_under(path: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; make sure none is left before deleting it."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for m in sorted((m for m in mounts if m.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def prepare_debian(ctx: Path, suite: str = "bookworm", *, what: str, log: Path, progress: Progress) -> None:
    """``rootfs.tar``: debootstrap (minbase) from the apt mirror, slimmed, tarred with numeric owners."""
    try:
        mirror, sources = debian_mirror(suite), image_sources(suite)
    except ImageProvisioningError as exc:
        raise ImageProvisioningError(f"{what}: {exc.problem}", exc.fix) from None
    if not shutil.which("debootstrap"):
        raise ImageProvisioningError(f"{what}: building the Debian image offline needs debootstrap, not installed",
                                     "install it (`apt-get install debootstrap`), or connect the engine to a "
                                     "registry so the official image can be pulled")
    if os.geteuid() != 0:
        raise ImageProvisioningError(
            f"{what}: building the Debian image offline needs root (debootstrap sets file owners and device files)",
            "run `sudo coursekit images` once (later runs need no root), or connect the engine to a registry "
            "so the official image can be pulled")
    work = ctx.parent / f"{ctx.name}.rootfs"
    if work.exists():
        _unmount_under(work)
        shutil.rmtree(work)
    try:
        t0 = time.monotonic()
        progress(f"[{what}] prepare: debootstrap --variant=minbase {suite} (from {mirror}, about a minute)")
        _run(["debootstrap", "--variant=minbase", suite, str(work), mirror], what=what, log=log,
             fix=f"check that apt can reach {mirror} (`apt-get update`), then run `coursekit images` again")
        progress(f"[{what}] prepare: slim the root filesystem, write rootfs.tar ({time.monotonic() - t0:.1f} s)")
        slim_rootfs(work, sources)
        _run(["tar", "-C", str(work), "--numeric-owner", "--sort=name", "--exclude=./dev/*", "--exclude=./proc/*",
              "--exclude=./sys/*", "-cf", str(ctx / "rootfs.tar"), "."], what=what, log=log)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def download_wheels(ctx: Path, python: str, *, what: str, log: Path, progress: Progress) -> None:
    """``pip download`` the recipe's requirements.txt (binary wheels for the image's Python) into wheels/."""
    arch = platform.machine()
    progress(f"[{what}] prepare: pip download -r requirements.txt (wheels for Python {python}, {arch})")
    platforms = [arg for tag in ("manylinux2014", "manylinux_2_28", "manylinux_2_34")
                 for arg in ("--platform", f"{tag}_{arch}")]
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", *platforms, "-d", str(ctx / "wheels"),
           "-r", str(ctx / "requirements.txt")]
    (ctx / "wheels").mkdir(exist_ok=True)
    _run(cmd, what=what, log=log, fix="check that the host reaches the package index (`pip download` works "
                                       "on the host) and that requirements.txt names existing versions")


PREPARERS: dict[str, Callable[..., None]] = {"busybox-static": prepare_busybox, "debootstrap": prepare_debian}


def build_context(recipe: Path, key: str, prepare: tuple[str, ...], python: str, *, slug: str, what: str,
                  progress: Progress, fresh: bool = False) -> Path:
    """A ready build context for ``recipe`` (cached as ``<slug>-<key>`` under :func:`cache_root`).

    ``fresh`` prepares it again even if cached (e.g. to get the mirror's newest packages).
    """
    root = cache_root()
    ctx = root / f"{slug}-{key}"
    ready = root / f"{slug}-{key}.ready"
    if ready.exists() and ctx.is_dir() and not fresh:
        return ctx
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"{slug}-{'[0-9a-f]' * len(key)}*"):  # older recipe versions: no longer needed
        if old.is_dir():
            _unmount_under(old)
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    shutil.copytree(recipe, ctx, ignore=shutil.ignore_patterns("__pycache__"))
    log = root / f"{slug}-{key}.log"
    log.write_text("")
    if prepare:
        if prepare[0] not in PREPARERS:
            raise ImageProvisioningError(f"{what}: unknown prepare step {prepare[0]!r}",
                                         f"use one of {', '.join(PREPARERS)} in the catalog entry")
        PREPARERS[prepare[0]](ctx, *prepare[1:], what=what, log=log, progress=progress)
    if (ctx / "requirements.txt").exists():
        download_wheels(ctx, python, what=what, log=log, progress=progress)
    ready.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return ctx
