"""coursekit/postgres:15 and coursekit.lessons.postgres against the real engine: the image behaves like the
official one for what lesson 04 uses, and the helpers fail with messages a learner can act on."""
from __future__ import annotations

import socket
import uuid

import pytest

from coursekit.docker import engine, images
from coursekit.lessons import postgres
from coursekit.errors import LessonError

pytestmark = pytest.mark.engine
LESSON = "test-postgres"


@pytest.fixture(scope="module", autouse=True)
def _image():
    images.ensure([postgres.IMAGE], progress=lambda _: None)


@pytest.fixture
def volume_name():
    """A unique volume name; the volume (if a test made it) is removed afterwards."""
    name = f"ck-test-pg-{uuid.uuid4().hex[:10]}"
    yield name
    postgres.remove_volume(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_a_password_the_container_exits_and_says_why():
    with engine.container(postgres.IMAGE, lesson=LESSON) as c:
        code = c.wait(timeout=60)["StatusCode"]
        log = c.logs().decode()
    assert code == 1
    assert "POSTGRES_PASSWORD" in log and "no password" in log, log


def test_data_survives_a_restart_and_a_new_container_on_the_same_volume(volume_name):
    pg = postgres.start(password="first-pw", volume=volume_name, lesson=LESSON)
    try:
        binding = pg.container.attrs["HostConfig"]["PortBindings"]["5432/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        db = pg.connect()
        db.run("CREATE TABLE fruit (name text, qty int)")
        for name, qty in [("apple", 3), ("pear", 5)]:
            db.run("INSERT INTO fruit VALUES (:n, :q)", n=name, q=qty)
        db.close()
        pg.restart()
        assert pg.connect().run("SELECT name, qty FROM fruit ORDER BY name") == [["apple", 3], ["pear", 5]]
        assert "already holds a database" in pg.container.logs().decode()
        first_id = pg.container.id
    finally:
        pg.remove()
    # A new container, a new password in the environment: the volume keeps the data and the old password.
    with pytest.raises(LessonError) as err:
        postgres.start(password="second-pw", volume=volume_name, lesson=LESSON)
    assert "refused the password" in err.value.problem and "volume" in err.value.fix
    with postgres.server(password="first-pw", volume=volume_name, lesson=LESSON) as pg2:
        assert pg2.container.id != first_id
        assert pg2.connect().run("SELECT sum(qty) FROM fruit") == [[8]]
    assert not engine.client().containers.list(all=True, filters={"id": pg2.container.id})


def test_user_and_database_settings_and_the_server_runs_unprivileged():
    with postgres.server(password="pw", user="shop", database="orders", lesson=LESSON) as pg:
        assert pg.connect().run("SELECT current_user, current_database()") == [["shop", "orders"]]
        status = pg.container.exec_run(["cat", "/proc/1/status"]).output.decode()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert uid != "0", "the server (PID 1) should run as the postgres user, not root"
        assert "orders" in pg.psql("SELECT current_database()")
        with pytest.raises(LessonError):
            pg.psql("SELECT * FROM no_such_table")
        with pytest.raises(LessonError, match="no database 'nope'"):
            postgres.connect(pg.port, "pw", user="shop", database="nope", timeout=5)


def test_docker_stop_shuts_the_server_down_cleanly():
    with postgres.server(password="pw", lesson=LESSON) as pg:
        client = pg.connect()  # on SIGTERM PostgreSQL would wait for this client: stop would end in a kill
        pg.container.stop(timeout=8)  # SIGINT: fast shutdown, exit code 0; a kill after the timeout is 137
        pg.container.reload()
        assert pg.container.attrs["State"]["ExitCode"] == 0
        assert "database system is shut down" in pg.container.logs().decode()
        client.close()


def test_connect_stops_waiting_when_the_container_exits_and_quotes_its_log():
    crash = ["sh", "-c", "sleep 1; echo 'FATAL: pretend crash' >&2; exit 3"]  # not postgres: runs as given
    with engine.container(postgres.IMAGE, crash, ports={"5432/tcp": None}, lesson=LESSON) as c:
        port = engine.host_port(c, "5432/tcp")
        with pytest.raises(engine.ContainerExited) as err:
            postgres.connect(port, "pw", container=c, timeout=60)
    assert err.value.exit_code == 3 and "pretend crash" in err.value.log_tail


def test_a_server_that_cannot_start_is_explained_and_removed(volume_name):
    vol = {engine.volume(volume_name, lesson=LESSON).name: {"bind": "/data", "mode": "rw"}}
    engine.run("coursekit/busybox:v1", ["sh", "-c", "echo 15 > /data/PG_VERSION"], volumes=vol, lesson=LESSON)
    with pytest.raises(engine.ContainerExited) as err:  # PG_VERSION alone is not a database
        postgres.start(password="pw", volume=volume_name, lesson=LESSON)
    assert "already holds a database" in err.value.log_tail and err.value.exit_code not in (0, None)
    assert not engine.client().containers.list(all=True, filters={"volume": volume_name})


def test_nothing_listening_is_reported_with_the_port():
    port = _free_port()
    with pytest.raises(LessonError) as err:
        postgres.connect(port, "pw", timeout=1)
    assert f"127.0.0.1:{port}" in err.value.problem and "did not accept" in err.value.problem


def test_a_failed_start_leaves_no_container(volume_name):
    postgres.start(password="right", volume=volume_name, lesson=LESSON).remove()
    before = {c.id for c in engine.client().containers.list(all=True, filters=engine.ours_filter(engine.SESSION_ID))}
    with pytest.raises(LessonError):
        postgres.start(password="wrong", volume=volume_name, lesson=LESSON)
    after = {c.id for c in engine.client().containers.list(all=True, filters=engine.ours_filter(engine.SESSION_ID))}
    assert after == before


def test_removed_on_error_removes_container_and_volume(volume_name):
    pg = postgres.start(password="pw", volume=volume_name, lesson=LESSON)
    with pytest.raises(ZeroDivisionError), pg.removed_on_error():
        1 / 0
    assert not engine.client().containers.list(all=True, filters={"id": pg.container.id})
    assert not engine.client().volumes.list(filters={"name": volume_name})


def test_password_from_env(monkeypatch):
    monkeypatch.delenv("CK_TEST_PG_PW", raising=False)
    made = postgres.password_from_env("CK_TEST_PG_PW")
    assert len(made) >= 16 and postgres.password_from_env("CK_TEST_PG_PW") == made
    monkeypatch.delenv("CK_TEST_PG_PW")
    with pytest.raises(LessonError, match="CK_TEST_PG_PW is not set"):
        postgres.password_from_env("CK_TEST_PG_PW", create=False)
    with pytest.raises(LessonError):
        postgres.start(password="", lesson=LESSON)


def test_someone_elses_volume_is_left_alone():
    name = f"ck-test-foreign-{uuid.uuid4().hex[:8]}"
    vol = engine.client().volumes.create(name)  # deliberately unlabelled: not coursekit's
    try:
        with pytest.raises(LessonError):
            postgres.remove_volume(name)
        assert engine.client().volumes.get(name)
    finally:
        vol.remove(force=True)
