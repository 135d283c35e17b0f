"""Smoke test: start the real server and ask it over HTTP. The Test stage runs it (buildspec-smoke.yml).

RELEASE_VERSION is a setting of the CodeBuild project (not of the code): the version the team
means to release. The test fails when the code is another version.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

PORT = 8123


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen([sys.executable, "app.py"], env={**os.environ, "PORT": str(PORT)})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{PORT}"
    proc.terminate()
    proc.wait(timeout=5)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_health_page_answers(server):
    assert get(server + "/health") == (200, "ok\n")


def test_greets_over_http(server):
    status, body = get(server + "/?name=pipeline")
    assert status == 200 and body.startswith("Hello, pipeline!")


def test_is_the_version_being_released(server):
    _, body = get(server + "/")
    assert f"(greeter {os.environ['RELEASE_VERSION']})" in body
