"""Test-suite wiring that must live at the repository root.

* Every notebook in ``notebooks/`` and ``solutions/`` is collected through nbval and
  executed twice: once with the Docker engine (``[engine]``), once with coursekit forced
  into no-engine mode as on Binder (``[no-engine]``). Outputs are not compared (lax), except
  cells marked ``# NBVAL_CHECK_OUTPUT``; a cell that raises fails.
* ``tests/test_leftovers.py`` runs last, whatever order was asked for, to prove nothing of
  ours is left on the engine.
* Markers (``pyproject.toml`` lists them): ``engine`` for everything that needs the Docker engine,
  set here on every test that uses the ``real_engine`` fixture and on the notebooks' engine runs
  (others say so themselves); ``slow`` and ``browser`` are set by the tests. ``pytest -m "not
  engine"`` is the tier that runs on a laptop without Docker.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).parent
NOTEBOOK_DIRS = {ROOT / "notebooks", ROOT / "solutions"}
MODES = {"engine": {}, "no-engine": {"COURSEKIT_NO_ENGINE": "1"}}


class CourseNotebook(IPyNbFile):
    """An nbval notebook whose kernel starts with one mode's environment."""

    mode_env: dict[str, str] = {}

    def __init__(self, *args, mode_env=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mode_env = mode_env or {}
        self.compare_outputs = False  # lax: only NBVAL_CHECK_OUTPUT cells are compared

    def setup(self):
        saved = {k: os.environ.get(k) for k in list(self.mode_env) + ["COURSEKIT_NO_ENGINE"]}
        if not self.mode_env:
            os.environ.pop("COURSEKIT_NO_ENGINE", None)
        os.environ.update(self.mode_env)
        try:
            self.kernel = RunningKernel(
                CURRENT_ENV_KERNEL_NAME,
                cwd=str(self.fspath.dirname),
                startup_timeout=self.config.option.nbval_kernel_startup_timeout,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.setup_sanitize_files()


def _engine_modes():
    if os.environ.get("COURSEKIT_NO_ENGINE") == "1":  # a machine without an engine: only that half
        return {"no-engine": MODES["no-engine"]}
    return MODES


class NotebookPair(pytest.File):
    """One notebook file, collected as one nbval collector per mode."""

    def collect(self):
        for mode, env in _engine_modes().items():
            nb = CourseNotebook.from_parent(self, path=self.path, name=mode, nodeid=f"{self.nodeid}::{mode}",
                                            mode_env=env)
            if mode == "engine":
                nb.add_marker(pytest.mark.engine)
            yield nb


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if file_path.suffix != ".ipynb" or opt.nbval or opt.nbval_lax:
        return None
    if file_path.parent.resolve() in NOTEBOOK_DIRS and ".ipynb_checkpoints" not in file_path.parts:
        return NotebookPair.from_parent(parent, path=file_path)
    return None


#: Fixtures that need the real Docker engine (real_engine hands it over; provisioned makes the course's images).
ENGINE_FIXTURES = {"real_engine", "provisioned"}


def pytest_runtest_setup(item):
    """A test that needs the engine fails (never skips) where none answers, and says what to do."""
    if item.get_closest_marker("engine") is None:
        return
    from coursekit.docker import engine

    if not engine.available():
        pytest.fail(f"this test needs the Docker engine: {engine.status().reason}. Start one (./course.sh test "
                    "does), or run the tier without it: pytest -m 'not engine'", pytrace=False)


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
    last = [i for i in items if i.nodeid.startswith("tests/test_leftovers.py")]
    if last:
        rest = [i for i in items if i not in last]
        items[:] = rest + last
