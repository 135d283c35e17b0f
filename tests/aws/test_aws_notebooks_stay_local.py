"""Every AWS notebook stays on this machine.

Each notebook in ``notebooks/`` and ``solutions/`` whose code starts the AWS sandbox
(``aws.sandbox(``) is executed in a fresh kernel whose environment sets
``COURSEKIT_AWS_GUARD_LOG``. The kernel installs the guard before the first cell (an
``exec_lines`` start-up line), so from then on :mod:`coursekit.aws.guard` logs every botocore
request, and every socket connect, UDP send and name lookup of a non-loopback host by any
library in the kernel, refusing those (see :func:`coursekit.aws.guard.record_to`). The test
fails if any logged attempt went anywhere but ``127.0.0.1`` (or if the kernel never started
recording, which would make an empty log meaningless).

Notebooks are found by that marker, so lessons that are added later are covered without
editing this file. They run in no-engine mode by default: the AWS parts run in full in every
mode, the kernel's recorder could not see a container's traffic anyway, and it is much
faster. Two notebooks run at a time, each in its own kernel. ``COURSEKIT_STAY_LOCAL_ENGINE=1``
runs them with the engine instead (one at a time).

``test_a_real_aws_call_is_caught`` proves the mechanism: a notebook that calls real AWS with
boto3 (before importing coursekit at all) and opens a raw socket to a non-loopback address
is caught on both counts, while a moto server on 127.0.0.1 is logged as allowed. (Nothing
really leaves: what is logged is refused before any connection or DNS lookup.)
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from coursekit.aws import guard as awsguard

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"\baws\.sandbox\(|from\s+coursekit\.aws\s+import\s[^\n]*\bsandbox\b")
#: The AWS lessons named in the course plan: when one of these files exists, it must be found.
PLANNED = ("09-cloud-computing", "10-s3", "11-ec2", "12-iam")
START_UP = "import coursekit.aws.guard as _ck_guard; _ck_guard.install(); del _ck_guard"


def aws_notebooks() -> list[Path]:
    """Notebooks in notebooks/ and solutions/ whose code starts the AWS sandbox."""
    found = []
    for folder in ("notebooks", "solutions"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            if any(c.cell_type == "code" and MARKER.search(c.source) for c in nb.cells):
                found.append(path)
    return found


AWS_NOTEBOOKS = aws_notebooks()


def run_recorded(nb, workdir: Path, log: Path, *, timeout: int = 300):
    """Execute ``nb`` (errors allowed, so every cell runs) in a kernel that records to ``log``."""
    from nbclient import NotebookClient

    env = dict(os.environ, **{awsguard.LOG_ENV: str(log)})
    if os.environ.get("COURSEKIT_STAY_LOCAL_ENGINE") != "1":
        env["COURSEKIT_NO_ENGINE"] = "1"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, startup_timeout=120,
                            record_timing=False, extra_arguments=[f"--IPKernelApp.exec_lines={START_UP}"],
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env)
    return nb


def describe(entries: list[dict]) -> str:
    return "\n".join(f"  {e.get('layer')}: {e.get('event') or e.get('method')} {e.get('url') or e.get('host')}"
                     f"{':' + str(e['port']) if e.get('port') else ''}" for e in entries)


def errors_of(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue', '')[:200]}"
            for i, c in enumerate(nb.cells, 1) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_the_aws_notebooks_are_found():
    names = {p.stem for p in AWS_NOTEBOOKS}
    expected = {p.stem for folder in ("notebooks", "solutions") for p in (ROOT / folder).glob("*.ipynb")
                if p.stem in PLANNED}
    assert expected <= names, f"these AWS lessons do not start the sandbox where the marker can see it: " \
                              f"{sorted(expected - names)}"
    assert "12-iam" in names, names


@pytest.fixture(scope="module")
def recorded_runs(request, tmp_path_factory):
    """Start every selected notebook's recorded run at once, two at a time (each in its own kernel);
    each test then waits for its own. Returns path -> Future of (executed notebook, log file)."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_notebook_stays_on_this_machine"]
    folder = tmp_path_factory.mktemp("guard-logs")

    def run(path):
        log = folder / f"{path.parent.name}-{path.stem}.jsonl"
        return run_recorded(nbformat.read(path, as_version=4), path.parent, log), log

    engine_mode = os.environ.get("COURSEKIT_STAY_LOCAL_ENGINE") == "1"  # one at a time: they share the engine
    with ThreadPoolExecutor(max_workers=1 if engine_mode else 2) as pool:
        yield {path: pool.submit(run, path) for path in selected}


@pytest.mark.parametrize("path", AWS_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_stays_on_this_machine(path, recorded_runs):
    nb, log = recorded_runs[path].result()
    entries = awsguard.read_log(log) if log.exists() else []
    assert any(e.get("event") == "recording" for e in entries), \
        f"the kernel never started recording ({awsguard.LOG_ENV} not honoured?): an empty log proves nothing"
    left = awsguard.left_the_machine(entries)
    errors = errors_of(nb)
    assert not left, (f"{path.relative_to(ROOT)} tried to reach beyond 127.0.0.1 (refused):\n{describe(left)}"
                      + ("\ncell errors:\n  " + "\n  ".join(errors) if errors else ""))


def test_a_real_aws_call_is_caught(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(  # no coursekit import: the start-up line alone must catch it
            "import boto3\n"
            "s3 = boto3.client('s3', region_name='us-east-1', aws_access_key_id='AKIAIOSFODNN7EXAMPLE',\n"
            "                  aws_secret_access_key='wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY')\n"
            "s3.list_buckets()"),
        nbformat.v4.new_code_cell("import socket\nsocket.create_connection(('192.0.2.10', 443), timeout=2)"),
        nbformat.v4.new_code_cell(
            "from coursekit import aws\n"
            "with aws.sandbox(server=True) as sb:\n"
            "    print(len(sb.client('s3').list_buckets()['Buckets']), 'buckets on', sb.endpoint_url)"),
    ]
    log = tmp_path / "guard.jsonl"
    run_recorded(nb, tmp_path, log, timeout=120)
    entries = awsguard.read_log(log)
    left = awsguard.left_the_machine(entries)
    assert {(e["layer"], e["host"]) for e in left} == {("botocore", "s3.amazonaws.com"), ("socket", "192.0.2.10")}, \
        describe(entries)
    for cell in nb.cells[:2]:  # refused, not just logged (coursekit shows its errors as two lines on stderr)
        shown = " ".join(o.get("ename", "") + o.get("text", "") for o in cell.outputs)
        assert "RealAWSBlocked" in shown, f"not refused: {cell.source!r} -> {shown[:300]!r}"
    local = [e for e in entries if e.get("layer") == "botocore" and not e["blocked"]]
    assert local and all(awsguard.is_loopback_host(e["host"]) for e in local), describe(entries)
    assert "0 buckets on http://127.0.0.1:" in "".join(o.get("text", "") for o in nb.cells[2].outputs), \
        json.dumps(nb.cells[2].outputs)[:500]
