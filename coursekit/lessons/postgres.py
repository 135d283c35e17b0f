"""A real PostgreSQL server in a container, for the Postgres example of lesson ``04-containers``.

The lesson (and its exercise) run the course's ``coursekit/postgres:15`` image, the stand-in for
the official ``postgres:15`` image, exactly as the official image's documentation says:

    docker run -d -e POSTGRES_PASSWORD=... -p 127.0.0.1:5433:5432 -v pgdata:/var/lib/postgresql/data postgres:15

:func:`start` does that through :mod:`coursekit.docker.engine` (so the container is labelled and
cleaned up, and the port is published on 127.0.0.1 only), then waits until the server really
accepts a login. :func:`connect` is that wait on its own: it retries while the server is still
starting and stops at once, with a sentence saying what to do, when retrying cannot help (a
wrong password, a database that does not exist, a container that exited).

>>> from coursekit import postgres                                # doctest: +SKIP
>>> with postgres.server(volume="shop-data", lesson="04-containers") as pg:  # doctest: +SKIP
...     db = pg.connect()
...     db.run("CREATE TABLE t (x int)")

The client is ``pg8000``, a PostgreSQL driver written in pure Python (no compiler, no libpq).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterator

from ..docker import engine, sdk
from ..errors import CoursekitError, DockerError, LessonError

IMAGE = "coursekit/postgres:15"
#: Where the image keeps its database files (declared as a VOLUME in its Dockerfile).
PGDATA = "/var/lib/postgresql/data"
#: The environment variable the lesson reads the password from (as you would in a real deployment).
PASSWORD_ENV = "COURSEKIT_PG_PASSWORD"

#: PostgreSQL error codes (SQLSTATE) that retrying will not fix.
_WRONG_PASSWORD = {"28P01", "28000"}
_NO_SUCH_DATABASE = "3D000"
#: "the database system is starting up / shutting down": retry.
_NOT_YET = {"57P03"}


def password_from_env(var: str = PASSWORD_ENV, *, create: bool = True) -> str:
    """The database password from the environment variable ``var``.

    With ``create`` (the default), a missing variable is set to a new random password first,
    so that a notebook never needs a password written in it. Real deployments do the same
    with a secret store: the password reaches the container as an environment variable.
    """
    value = os.environ.get(var, "")
    if not value and create:
        value = secrets.token_urlsafe(16)
        os.environ[var] = value
    if not value:
        raise LessonError(f"the environment variable {var} is not set, so there is no database password",
                          f"set it before starting Jupyter (export {var}=...), or in Python: "
                          f"os.environ[{var!r}] = '...'")
    return value


def _sqlstate(exc: Exception) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("C", ""))


def _message(exc: Exception) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("M") or exc)


def _raise_if_exited(container: Any) -> None:
    """If the container has stopped, raise engine.ContainerExited (exit code, last log lines)."""
    if container is None:
        return
    try:
        container.reload()
    except Exception:
        raise DockerError(f"the container {container.name} disappeared while we waited for PostgreSQL",
                          "something removed it (docker rm?): start the server again") from None
    if container.status in ("exited", "dead"):
        engine.wait_running(container, timeout=0, settle=0)  # raises ContainerExited with the details


def connect(port: int, password: str, *, user: str = "postgres", database: str | None = None,
            timeout: float = 30.0, container: Any = None):
    """A ``pg8000.native.Connection`` to the server published on ``127.0.0.1:port``.

    Retries for up to ``timeout`` seconds while the server starts (the port may accept TCP
    before PostgreSQL listens). A wrong password or database fails at once; if ``container``
    is given and exits meanwhile, :class:`coursekit.docker.engine.ContainerExited` quotes its log.
    """
    import pg8000.native as pg

    database = database or user
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            return pg.Connection(user, password=password, host="127.0.0.1", port=int(port), database=database,
                                 timeout=10)
        except pg.DatabaseError as exc:
            code = _sqlstate(exc)
            if code in _WRONG_PASSWORD:
                raise LessonError(
                    f"PostgreSQL on 127.0.0.1:{port} refused the password for user {user!r} "
                    f"({_message(exc)})",
                    "use the password the database was created with: POSTGRES_PASSWORD only counts when the "
                    "data volume is empty; a volume that already holds a database keeps its first password "
                    "(remove the volume to start afresh)") from None
            if code == _NO_SUCH_DATABASE:
                raise LessonError(f"PostgreSQL on 127.0.0.1:{port} has no database {database!r}",
                                  "connect to one that exists (POSTGRES_DB, by default the user's name) or "
                                  "create it first: CREATE DATABASE ...") from None
            if code not in _NOT_YET:
                raise LessonError(f"PostgreSQL on 127.0.0.1:{port} refused the connection: {_message(exc)}",
                                  "read the server's reason above") from None
            last = _message(exc)
        except (pg.InterfaceError, OSError) as exc:  # nothing listening yet, or the port closed on us
            last = str(exc) or type(exc).__name__
        _raise_if_exited(container)
        if time.monotonic() > deadline:
            raise LessonError(
                f"PostgreSQL on 127.0.0.1:{port} did not accept a connection within {timeout:.0f} s "
                f"(last try: {last})",
                "check that a server runs there and publishes container port 5432 on that host port "
                "(docker ps), and read its logs (docker logs NAME)")
        time.sleep(0.2)


@dataclass
class Server:
    """A PostgreSQL container started by :func:`start`."""

    container: Any
    port: int                  # the host port on 127.0.0.1
    password: str
    user: str = "postgres"
    database: str = "postgres"
    volume: str | None = None  # the named volume holding PGDATA (None: an anonymous one)

    def connect(self, timeout: float = 30.0):
        """A new pg8000 connection (retrying while the server starts)."""
        return connect(self.port, self.password, user=self.user, database=self.database, timeout=timeout,
                       container=self.container)

    def psql(self, sql: str) -> str:
        """Run ``psql -c SQL`` inside the container (``docker exec``); its output as text."""
        return psql(self.container, sql, user=self.user, database=self.database)

    def restart(self, timeout: float = 30.0) -> "Server":
        """``docker restart``, then wait until the server accepts logins again.

        A port chosen by Docker (``port=None``) is chosen afresh at every start, so
        :attr:`port` is read again after the restart.
        """
        self.container.restart(timeout=10)
        self.port = engine.host_port(self.container, "5432/tcp")
        self.connect(timeout).close()
        return self

    @contextlib.contextmanager
    def removed_on_error(self) -> Iterator["Server"]:
        """``with pg.removed_on_error(): ...``: if the block fails, the container and its named
        volume are removed before the error goes on, so a failed notebook cell leaves nothing behind."""
        try:
            yield self
        except BaseException:
            self.remove(volume=True)
            raise

    def remove(self, *, volume: bool = False) -> None:
        """``docker rm -f`` the container (and ``docker volume rm`` its named volume if ``volume``)."""
        with contextlib.suppress(Exception):
            self.container.remove(force=True, v=True)  # v: the anonymous volume, if it had one
        if volume and self.volume:
            remove_volume(self.volume)


def remove_volume(name: str) -> None:
    """Remove a volume coursekit created (missing is fine; someone else's is refused)."""
    de = sdk.errors()

    try:
        vol = engine.client().volumes.get(name)
    except de.NotFound:
        return
    if not engine.is_ours(vol.attrs.get("Labels")):
        raise LessonError(f"the volume {name!r} was not created by coursekit, so it is left alone",
                          f"remove it yourself if you are sure: docker volume rm {name}")
    vol.remove(force=True)


def start(*, password: str | None = None, volume: str | None = None, port: int | None = None,
          user: str = "postgres", database: str | None = None, name: str | None = None,
          lesson: str | None = None, timeout: float = 30.0) -> Server:
    """``docker run -d -e POSTGRES_PASSWORD=... -p 127.0.0.1:PORT:5432 [-v VOLUME:PGDATA] coursekit/postgres:15``.

    ``password``: default from :func:`password_from_env`; ``volume``: a named volume
    (created, labelled, if missing) for the data; ``port``: the host port (default: a free
    one). Returns once the server accepts a login; if it never does, the container is
    removed and the error says why.
    """
    if password is None:
        password = password_from_env()
    if not isinstance(password, str) or not password:
        raise LessonError("the PostgreSQL password is empty, and the image refuses to create a database "
                          "without one", "pass a non-empty string: start(password='...')")
    database = database or user
    env = {"POSTGRES_PASSWORD": password, "POSTGRES_USER": user, "POSTGRES_DB": database}
    mounts = {}
    if volume:
        engine.volume(volume, lesson=lesson)
        mounts = {volume: {"bind": PGDATA, "mode": "rw"}}
    c = engine.run(IMAGE, detach=True, environment=env, ports={"5432/tcp": port}, volumes=mounts, name=name,
                   lesson=lesson)
    try:
        try:
            port = engine.host_port(c, "5432/tcp")
        except CoursekitError:  # an instant exit takes the port mapping with it: say why it exited
            _raise_if_exited(c)
            raise
        server = Server(c, port, password, user, database, volume)
        server.connect(timeout).close()
    except BaseException:
        with contextlib.suppress(Exception):
            c.remove(force=True, v=True)
        raise
    return server


@contextlib.contextmanager
def server(*, remove_volume: bool = False, **kwargs: Any) -> Iterator[Server]:
    """:func:`start` as a ``with`` block: the container is removed when the block ends, even on
    an error (the named volume too if ``remove_volume``; otherwise it stays, with the data)."""
    pg = start(**kwargs)
    try:
        yield pg
    finally:
        pg.remove(volume=remove_volume)


def psql(container: Any, sql: str, *, user: str = "postgres", database: str | None = None) -> str:
    """``docker exec CONTAINER psql -U USER -d DB -c SQL``: the client inside the container.

    Raises a LessonError quoting psql's message when the command fails.
    """
    cmd = ["psql", "-U", user, "-d", database or user, "--no-psqlrc", "-c", sql]
    code, out = container.exec_run(cmd)
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    if code != 0:
        raise LessonError(f"psql in {container.name} failed (exit code {code}): {text.strip()}",
                          "check the SQL, the user and the database name")
    return text
