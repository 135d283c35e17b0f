"""``coursekit grade --swarm``: the class graded as one Docker Swarm job (one-node swarm, real engine).

The work list's rules are checked first, in-process (each test client speaks from its own
loopback address, as each task container does from its own): one open claim per address, a
report only with its item's nonce, from the claiming address, once. Then the class of
tests/grading/test_classroom.py, plus a sandbox probe and a submission that attacks the work list, is
graded locally and as a Swarm job: the gradebooks must be the same, row for row.
"""
from __future__ import annotations

import csv
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time

import pytest
from fixtures.grading import classroom

from coursekit import cli
from coursekit.docker import engine, labels
from coursekit.grading import (classroom as gradeclass, image as gradeimage, queue as gradequeue,
                               swarm as gradeswarm)
from coursekit.orchestrate import swarm
from coursekit.grading import local as gs
from coursekit.errors import GradingError
from coursekit.grading.limits import GradeLimits

A = "09-cloud-computing"

# --------------------------------------------------------------------------- the work list, in-process


@pytest.fixture
def worklist(tmp_path):
    wl = gradequeue.WorkList(tmp_path / "q")
    nonces = {f"i{n}": os.urandom(16).hex() for n in range(3)}
    for item, nonce in nonces.items():
        wl.add(item, {"cells": [{"source": f"the work of student {item}"}]}, nonce)
    server = gradequeue._Server(("127.0.0.1", 0), gradequeue._State(wl.folder), max_report=10_000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield wl, nonces, server.server_address[1]
    server.shutdown()
    server.server_close()


def _post(port, path, doc=None, source="127.0.0.2", raw=None):
    """POST from ``source`` (one loopback address = one task container)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", path, body=raw if raw is not None else json.dumps(doc).encode())
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    return r.status, (json.loads(data) if data else None)


def _report(item, nonce):
    return {"item": item, "nonce": nonce, "report": {"format": 1, "answers": {}}}


def test_each_address_holds_one_item_until_its_report_is_in(worklist):
    wl, nonces, port = worklist
    status, first = _post(port, "/claim", {"task": "t1"})
    assert status == 200 and first["item"] == "i0" and first["nonce"] == nonces["i0"]
    assert "student i0" in first["cells"][0]["source"]
    assert _post(port, "/claim", {"task": "t1"})[0] == 409, "a second claim from the same sandbox"
    status, other = _post(port, "/claim", {"task": "t2"}, source="127.0.0.3")
    assert status == 200 and other["item"] == "i1", "another sandbox gets the next item, never the same one"
    assert wl.claims()["i0"]["address"] == "127.0.0.2" and wl.claims()["i0"]["task"] == "t1"
    assert not (wl.folder / "items" / "i0.json").exists(), "an item handed out leaves the list"
    assert _post(port, "/report", _report("i0", nonces["i0"]))[0] == 200
    assert wl.result("i0", 100_000)["nonce"] == nonces["i0"]
    status, again = _post(port, "/claim", {"task": "t3"})
    assert status == 200 and again["item"] == "i2", "reported: nothing of that sandbox is left, the address is free"
    assert _post(port, "/claim", {"task": "t4"}, source="127.0.0.4")[0] == 204, "the list is empty"


def test_a_report_counts_only_with_its_nonce_from_its_address_once(worklist):
    wl, nonces, port = worklist
    _post(port, "/claim", {"task": "a"})                      # 127.0.0.2 holds i0
    _post(port, "/claim", {"task": "b"}, source="127.0.0.3")  # 127.0.0.3 holds i1
    assert _post(port, "/report", _report("i0", "0" * 32))[0] == 403, "a guessed nonce"
    assert _post(port, "/report", _report("i1", nonces["i1"]))[0] == 403, "another address's item, even with its nonce"
    assert _post(port, "/report", _report("i2", nonces["i2"]))[0] == 403, "an item nobody claimed"
    assert _post(port, "/report", {"item": "i0", "nonce": nonces["i0"], "report": "all passed"})[0] == 403
    assert wl.result("i0", 100_000) is None and wl.result("i1", 100_000) is None
    assert _post(port, "/report", _report("i1", nonces["i1"]), source="127.0.0.3")[0] == 200
    assert _post(port, "/report", _report("i1", nonces["i1"]), source="127.0.0.3")[0] == 403, "only once"
    assert len(wl.refused()) == 5 and "127.0.0.2" in wl.refused()[0]


def test_a_closed_claim_frees_its_address_for_a_new_container(worklist):
    wl, nonces, port = worklist
    _post(port, "/claim", {"task": "a"})
    assert _post(port, "/claim", {"task": "b"})[0] == 409
    wl.close("i0")  # the host saw task a end without a report: its container is gone
    status, doc = _post(port, "/claim", {"task": "b"})
    assert status == 200 and doc["item"] == "i1"


def test_oversized_bodies_and_floods_are_cut_off(worklist):
    wl, nonces, port = worklist
    assert _post(port, "/report", raw=b"x" * 20_000)[0] == 413
    assert _post(port, "/claim", raw=b"[1, 2]")[0] == 400
    idle = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.5", 0))
            for _ in range(gradequeue.PER_ADDRESS)]
    try:
        time.sleep(0.3)
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            _post(port, "/claim", {"task": "x"}, source="127.0.0.5")
        assert _post(port, "/claim", {"task": "y"}, source="127.0.0.6")[0] == 200, "other sandboxes still get served"
    finally:
        for s in idle:
            s.close()


def test_how_an_ended_task_is_told():
    lim = GradeLimits()
    assert gradeswarm.ended_status(137, False, "", lim)[0] == "out of memory"
    assert gradeswarm.ended_status(1, True, "", lim)[0] == "out of memory"
    status, message = gradeswarm.ended_status(1, False, "Traceback: boom", lim)
    assert status == "crashed" and "exit code 1" in message and "boom" in message
    assert gradeswarm.ended_status(75, False, "", lim)[0] == "grader error", "could not hand in: done again next run"


# --------------------------------------------------------------------------- a class, locally and on the swarm

PROBE = classroom.SANDBOX_PROBE

ATTACK = r'''
import json, urllib.error, urllib.request
argv = open("/proc/1/cmdline", "rb").read().split(b"\0")  # the worker's command line names the work list
url = argv[argv.index(b"--queue") + 1].decode() if b"--queue" in argv else None
def post(path, doc):
    req = urllib.request.Request(url + path, data=json.dumps(doc).encode(), method="POST")
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__
tries = {"queue": bool(url)}
if url:
    tries["claim"] = post("/claim", {"task": "me"})
    fake = {"format": 1, "answers": {q: {"status": "answered", "value": 10 ** 9} for q in ("q1", "q2", "q3", "q4")}}
    tries["reports"] = sorted({post("/report", {"item": f"i{n:05d}", "nonce": "0" * 32, "report": fake})
                               for n in range(20)}, key=str)
    tries["huge"] = post("/report", {"item": "i00000", "nonce": "0" * 32, "report": {"x": "y" * 30_000_000}})
q4 = json.dumps(tries)
'''


def _book(out):
    with open(out / "gradebook.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def swarm_before(real_engine):
    return swarm.state()


@pytest.fixture(scope="module")
def both(tmp_path_factory, swarm_before):
    root = tmp_path_factory.mktemp("swarmclass")
    expected = classroom.class_of_09(root / "subs")
    q4 = classroom.question_cells(A)["q4"][0]
    every = list(classroom.points(A))
    classroom.write(classroom.student(A, solved=every, replace={q4: PROBE}), root / "subs" / "probe.ipynb")
    classroom.write(classroom.student(A, solved=every, replace={q4: ATTACK}), root / "subs" / "attacker.ipynb")
    runs, lines = {}, []
    for cluster in ("local", "swarm"):
        t = time.monotonic()
        res = gradeclass.grade(root / "subs", classroom.solution(A), root / cluster, workers=2, cluster=cluster,
                               progress=lines.append if cluster == "swarm" else None)
        runs[cluster] = (res, time.monotonic() - t)
    print(f"\n15 submissions of {A}, workers=2: local {runs['local'][1]:.1f} s, swarm {runs['swarm'][1]:.1f} s")
    return root, expected, runs, lines


@pytest.mark.slow
def test_the_swarm_job_gives_the_same_gradebook_as_local_mode(both):
    root, expected, runs, _ = both
    local, on_swarm = _book(root / "local"), _book(root / "swarm")
    assert on_swarm == local, "every row, every column"
    for student, want in expected.items():
        assert {k: on_swarm[student][k] for k in want} == \
            {k: (f"{v:g}" if not isinstance(v, str) else v) for k, v in want.items()}, student
    res = runs["swarm"][0]
    assert sorted(res.ran) == sorted(local) and not res.kept
    for name in expected:  # (the probe's and the attacker's answers tell where they ran: their feedback differs)
        assert (root / "swarm" / "feedback" / f"{name}.md").read_text() == \
            (root / "local" / "feedback" / f"{name}.md").read_text()


def test_progress_lines_and_log_as_in_local_mode(both):
    root, _, _, lines = both
    assert len([ln for ln in lines if re.match(r"\[\d+/15\] ", ln)]) == 15
    assert any(ln.startswith("[15/15]") for ln in lines)
    log = (root / "swarm" / "grade.log").read_text()
    assert "as a Docker Swarm job" in log and "swarm job coursekit-grade-" in log and "first cell after" in log


def test_the_swarm_sandbox_is_what_the_limits_say(both):
    res = both[2]["swarm"][0].results["probe"]
    facts = json.loads(res.answers["q4"]["value"])
    assert facts["uid"] == 10001 and facts["cap_eff"] == facts["cap_bnd"] == "0000000000000000"
    assert facts["nnp"] == "1", "no-new-privileges, set by the worker where the service cannot"
    assert facts["interfaces"] == ["eth0", "lo"], "one interface: the internal work-list network"
    assert not {k: v for k, v in facts["net"].items() if v == "connected"}, facts["net"]
    assert not facts["root_writable"] and facts["tmp_writable"] and not facts["socket"]
    assert {"noexec", "nosuid", "nodev"} <= set(facts["tmp"][0].split(","))
    assert facts["core"] == [0, 0] and facts["nofile"] == [1024, 1024]
    assert facts["pids"] == "128" and int(facts["memory"]) == 1 << 30


def test_the_run_image_has_no_setuid_or_setgid_file(real_engine):
    image = gradeimage.grader_image()
    out = engine.run(image, ["find", "/", "-xdev", "-perm", "/6000", "-type", "f"], network_mode="none", user="0",
                     lesson="grade-swarm-test")
    assert out.decode().split() == []


def test_a_submission_cannot_claim_another_item_or_fake_a_report(both):
    root, _, runs, _ = both
    tries = json.loads(runs["swarm"][0].results["attacker"].answers["q4"]["value"])
    assert tries["queue"] and tries["claim"] == 409, "its worker holds its item: no second claim, no one else's work"
    assert tries["reports"] == [403], "no report without the item's nonce"
    assert tries["huge"] != 200
    attacker = _book(root / "swarm")["attacker"]
    pts = classroom.points(A)
    assert (attacker["status"], attacker["total"]) == ("graded", f"{sum(pts.values()) - pts['q4']:g}"), \
        "graded normally: only q4 (the attack) lost"
    assert "the work list refused" in (root / "swarm" / "grade.log").read_text()
    local = json.loads(runs["local"][0].results["attacker"].answers["q4"]["value"])
    assert local == {"queue": False}


def test_a_second_run_runs_nothing(both, swarm_before, tmp_path):
    root = both[0]
    out = tmp_path / "out"
    shutil.copytree(root / "swarm", out)
    again = gradeclass.grade(root / "subs", classroom.solution(A), out, workers=2, cluster="swarm", progress=None)
    assert again.ran == [] and len(again.kept) == 15
    assert _book(out) == _book(root / "swarm") and swarm.state() == swarm_before


@pytest.mark.slow
def test_an_interrupted_swarm_run_tidies_up_and_resumes(both, swarm_before, tmp_path):
    root = both[0]
    with pytest.raises(KeyboardInterrupt):
        gradeclass.grade(root / "subs", classroom.solution(A), tmp_path / "out", workers=2, cluster="swarm",
                         progress=classroom.stop_after(3))
    assert not engine.client().containers.list(all=True, filters={"label": labels.GRADE_RUN_LABEL})
    assert swarm.state() == swarm_before
    saved = [json.loads(ln)["student"] for ln in (tmp_path / "out" / "state.jsonl").read_text().splitlines()]
    assert len(saved) == 3
    rest = gradeclass.grade(root / "subs", classroom.solution(A), tmp_path / "out", workers=2, cluster="swarm",
                            progress=None)
    assert sorted(rest.kept) == sorted(saved) and len(rest.ran) == 15 - 3
    assert _book(tmp_path / "out") == _book(root / "swarm")


@pytest.mark.slow
def test_a_worker_out_of_memory_and_a_sandbox_past_its_deadline(tmp_path, swarm_before):
    subs = tmp_path / "subs"
    hang = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    classroom.write(classroom.student(A, solved=list(classroom.points(A)), append=[hang]), subs / "hangs.ipynb")
    classroom.write(classroom.student(A, solved=list(classroom.points(A))), subs / "huge" / f"{A}.ipynb")
    (subs / "huge" / "data.bin").write_bytes(os.urandom(96 << 20))  # the worker reads it whole: 192m is not enough
    # the hung cell is interrupted in vain and given 10 s to stop: the sandbox's 12 s are over first
    limits = GradeLimits(timeout=12, cell_timeout=12, interrupt_grace=10, memory="192m", submission_bytes=150_000_000)
    res = gradeclass.grade(subs, classroom.solution(A), tmp_path / "out", workers=2, limits=limits, cluster="swarm",
                           progress=None)
    hangs, huge = res.results["hangs"], res.results["huge"]
    assert (hangs.status, hangs.score) == ("timed out", 0) and "12 s" in hangs.message, str(hangs)
    assert (huge.status, huge.score) == ("out of memory", 0) and "192m" in huge.message, str(huge)
    assert swarm.state() == swarm_before


@pytest.mark.slow
def test_the_cli_option_and_a_wrong_cluster(both, tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(both[0] / "subs" / "bea.ipynb", subs / "bea.ipynb")
    code = cli.main(["grade", str(subs), "--assignment", str(classroom.solution(A)), "--out", str(tmp_path / "o"),
                     "--workers", "1", "--swarm"])
    assert code == 0 and _book(tmp_path / "o")["bea"]["total"] == "8"
    assert "as a Docker Swarm job" in capsys.readouterr().out
    with pytest.raises(GradingError) as err:
        gradeclass.grade(subs, classroom.solution(A), tmp_path / "o2", cluster="kubernetes", progress=None)
    assert "swarm" in err.value.fix


def test_nothing_is_left_and_swarm_is_as_it_was(both, swarm_before):
    cl = engine.client()
    assert swarm.state() == swarm_before
    ours = {"label": [labels.GRADE_RUN_LABEL]}
    assert not cl.containers.list(all=True, filters=ours)
    assert not cl.containers.list(all=True, filters={"label": gs.GRADE_LABEL})
    assert not cl.networks.list(filters=ours)
    assert not [n for n in cl.networks.list() if n.name.startswith("coursekit-grade")]
    assert not cl.volumes.list(filters={"label": f"{engine.SESSION}={engine.SESSION_ID}"})
    if swarm.state() == "active":
        assert not cl.services.list(filters=ours)
    assert not list(engine.scratch_path().glob("grade-*"))


def test_a_file_that_cannot_be_written_into_the_sandbox_is_left_out_with_a_note(tmp_path, monkeypatch):
    """The worker writes the kernel's settings first, then the student's files; a file that cannot be
    written (here: its folder's name is taken by a file; in a sandbox: /tmp is full) is left out with a
    note for the feedback, and the kernel can still start."""
    import base64

    from coursekit.grading.worker import hygiene as gradeworker

    monkeypatch.setattr(gradeworker, "WORK", tmp_path / "work")
    monkeypatch.setattr(gradeworker, "RUNTIME", tmp_path / "runtime")
    data = base64.b64encode(b"x,y\n1,2\n").decode()
    notes = gradeworker.prepare_tmp({"files": {"data.csv": data, "data.csv/inner.csv": data},
                                      "limits": {"tmpfs_size": "64m"}})
    assert (tmp_path / "work" / "data.csv").read_bytes() == b"x,y\n1,2\n"
    assert len(notes) == 1 and "data.csv/inner.csv" in notes[0] and "64m" in notes[0], notes
    assert (tmp_path / "runtime" / "jupyter" / "kernels" / gradeworker.KERNEL_NAME / "kernel.json").is_file()
