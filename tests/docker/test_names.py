"""Image references are read as the engine reads them; bad ones say what is wrong."""
import doctest

import pytest

from coursekit.docker import names as imagenames
from coursekit.errors import DockerError
from coursekit.docker.names import parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, canonical, official", [
    ("postgres", "docker.io/library/postgres:latest", True),
    ("postgres:15", "docker.io/library/postgres:15", True),
    ("bitnami/postgresql:15", "docker.io/bitnami/postgresql:15", False),
    ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36", True),
    ("127.0.0.1:5000/web", "127.0.0.1:5000/web:latest", False),
    ("localhost/team/web:2", "localhost/team/web:2", False),
    ("public.ecr.aws/nginx/nginx:1.25", "public.ecr.aws/nginx/nginx:1.25", False),
    (f"postgres@{D}", f"docker.io/library/postgres@{D}", True),
    (f"127.0.0.1:5000/web:1.0@{D}", f"127.0.0.1:5000/web:1.0@{D}", False),
])
def test_defaults_are_filled_in(ref, canonical, official):
    name = parse(ref)
    assert name.canonical == canonical
    assert name.official is official
    assert name.pinned is ("@" in ref)


def test_a_port_is_not_a_tag():
    n = parse("127.0.0.1:5000/web")
    assert (n.registry, n.repository, n.tag) == ("127.0.0.1:5000", "web", "latest")


@pytest.mark.parametrize("ref, words", [
    ("Postgres", "capital letters"),
    ("web:bad tag", "tag"),
    ("web@sha256:123", "64 hex digits"),
    ("team//web", "empty part"),
    ("", "empty"),
    ("we$b", "may only contain"),
])
def test_bad_names_are_explained(ref, words):
    with pytest.raises(DockerError, match=words):
        parse(ref)


def test_docstring_examples():
    assert doctest.testmod(imagenames).failed == 0
