"""Image names, read the way the engine reads them: registry host, repository, tag, digest.

``docker pull postgres`` means ``docker.io/library/postgres:latest``: the registry is Docker
Hub unless the first part of the name looks like a host (has a ``.`` or a ``:port``, or is
``localhost``); an official image lives in the ``library/`` namespace; a missing tag means
``latest``; ``@sha256:...`` names one exact manifest, whatever the tags say later.

    >>> parse("postgres").canonical
    'docker.io/library/postgres:latest'
    >>> n = parse("127.0.0.1:5000/team/web:1.2")
    >>> (n.registry, n.repository, n.tag, n.official)
    ('127.0.0.1:5000', 'team/web', '1.2', False)

Lesson: ``06-registries``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import DockerError

DOCKER_HUB = "docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageName:
    registry: str            # host[:port]; docker.io for Docker Hub
    repository: str          # path in the registry, e.g. library/postgres or team/web
    tag: Optional[str]       # None when only a digest was given
    digest: Optional[str]    # sha256:..., or None

    @property
    def official(self) -> bool:
        """An official Docker Hub image (``library/...``): curated and maintained with the upstream project."""
        return self.registry == DOCKER_HUB and self.repository.startswith("library/")

    @property
    def pinned(self) -> bool:
        """Names exactly one image forever (a digest); a tag can be moved to another image at any time."""
        return self.digest is not None

    @property
    def canonical(self) -> str:
        """The fully spelled-out name the engine uses."""
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _bad(ref: str, why: str, fix: str) -> DockerError:
    return DockerError(f"{ref!r} is not a valid image name: {why}", fix)


def parse(ref: str) -> ImageName:
    """Split an image reference into its parts, with Docker's defaults filled in."""
    if not isinstance(ref, str) or not ref.strip():
        raise _bad(str(ref), "it is empty", "write e.g. 'postgres:15' or '127.0.0.1:5000/web:1.0'")
    ref = ref.strip()
    name, digest = (ref.split("@", 1) + [None])[:2]
    if digest is not None and not _DIGEST.match(digest):
        raise _bad(ref, f"the digest {digest!r} is not sha256: followed by 64 hex digits",
                   "copy the digest exactly, e.g. from `docker images --digests`")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG.match(tag):
            raise _bad(ref, f"the tag {tag!r} may only contain letters, digits, _ . - (up to 128, not starting "
                            "with . or -)", "pick a tag like 1.0, 2024-05-01 or stable")
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
    else:
        registry, path = DOCKER_HUB, parts
    if not path or not all(path):
        raise _bad(ref, "it has an empty part between slashes", "remove the extra '/'")
    for comp in path:
        if comp != comp.lower():
            raise _bad(ref, f"{comp!r} has capital letters; repository names are lower case",
                       f"use {comp.lower()!r}")
        if not _COMPONENT.match(comp):
            raise _bad(ref, f"{comp!r} may only contain a-z, 0-9 and single separators (. _ __ -)",
                       "start and end each part with a letter or digit")
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    if tag is None and digest is None:
        tag = "latest"
    return ImageName(registry, "/".join(path), tag, digest)
