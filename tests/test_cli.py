"""The `coursekit` command as a user types it: doctor, images, clean, assign, vm-assets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.docker import engine

ROOT = Path(__file__).resolve().parents[1]


def coursekit(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("COURSEKIT_NO_ENGINE", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "coursekit.cli", *args], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=300)


@pytest.mark.engine
def test_doctor_json_reports_mode_engine_and_versions():
    out = coursekit("doctor", "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["mode"] in {"full", "offline"}
    items = {f["item"]: f for f in rep["findings"]}
    assert items["docker engine"]["ok"] and "API" in items["docker engine"]["value"]
    for pkg in ("jupyterlab", "ipywidgets", "docker", "boto3", "moto"):
        assert items[pkg]["ok"] and items[pkg]["value"][0].isdigit(), items[pkg]
    assert "image coursekit/busybox:v1" in items and items["image coursekit/busybox:v1"]["ok"]
    assert "image registry" in items


def test_doctor_without_an_engine_says_why_and_what_to_do():
    out = coursekit("doctor", env={"DOCKER_HOST": "unix:///tmp/ck-nothing-here.sock"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("mode: no engine")
    assert "nothing at /tmp/ck-nothing-here.sock" in out.stdout and "what to do:" in out.stdout


@pytest.mark.engine
def test_images_when_everything_is_present_is_quick_and_says_so():
    t0 = time.perf_counter()
    out = coursekit("images")
    took = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("present") >= 3, out.stdout
    assert took < 10, f"an idempotent `coursekit images` took {took:.1f} s"  # generous: the bench measures it


@pytest.mark.engine
def test_clean_removes_what_coursekit_started():
    c = engine.run("coursekit/busybox:v1", "sleep 60", detach=True)
    v = engine.volume()
    out = coursekit("clean")
    assert out.returncode == 0, out.stderr
    assert c.name in out.stdout or "1 containers" in out.stdout, out.stdout
    names = [x.name for x in engine.client().containers.list(all=True)]
    assert c.name not in names
    assert v.name not in [x.name for x in engine.client().volumes.list()]


def test_assign_on_a_corrupted_notebook_names_file_and_fix(tmp_path):
    (tmp_path / "solutions").mkdir()
    bad = tmp_path / "solutions" / "99-broken.ipynb"
    bad.write_text('{"cells": [ {"cell_type": "code", ')
    out = coursekit("assign", str(bad), "--out", str(tmp_path / "exercises"), cwd=tmp_path)
    assert out.returncode == 2
    assert "99-broken.ipynb" in out.stderr and "What to do:" in out.stderr
    assert "Traceback" not in out.stderr


def test_assign_check_reports_stale_exercises(tmp_path):
    out = coursekit("assign", "--check", "--out", str(tmp_path / "empty"))
    assert out.returncode == 1 and "out of date" in out.stdout


def test_unknown_command_is_a_usage_error():
    out = coursekit("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_lint_flags_mistakes_with_rule_ids_and_exit_code(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nENV DB_PASSWORD=hunter2\nCMD python app.py\n")
    out = coursekit("lint", str(tmp_path / "Dockerfile"))
    assert out.returncode == 1, out.stdout + out.stderr          # a secret in ENV is an error
    assert "CK102" in out.stdout and "CK301" in out.stdout and "CK501" in out.stdout
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "Dockerfile").write_text(
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY app.py .\nUSER 65534\nCMD [\"python\", \"app.py\"]\n")
    out = coursekit("lint", "--json", str(tmp_path / "good"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["ok"] is True
