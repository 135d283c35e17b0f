"""What a lesson says in no-engine mode (Binder): each Docker step explains itself, once in full.

No engine is used: every test forces no-engine mode, as Binder does, or pretends an engine answers.
"""
from __future__ import annotations

import pytest

from coursekit.docker import engine
from coursekit.lesson import steps as lesson


@pytest.fixture
def shown(monkeypatch):
    """No-engine mode, and everything the lesson helpers show, as (markdown, text) pairs."""
    said: list[tuple[str, str]] = []
    monkeypatch.setenv(engine.NO_ENGINE_ENV, "1")
    monkeypatch.setattr(lesson, "show", lambda markdown, text: said.append((markdown, text)))
    monkeypatch.setattr(lesson, "install_notebook_handler", lambda: None)
    engine.reset()
    yield said
    monkeypatch.delenv(engine.NO_ENGINE_ENV)
    engine.reset()


def _steps(n: int) -> list[bool]:
    return [lesson.needs_engine(f"docker run --rm coursekit/busybox:v1 echo step{i}", shows=f"the line step{i}",
                                why=f"reason {i}") for i in range(n)]


def test_every_step_is_skipped_and_shows_its_own_command(shown):
    lesson.start("99-demo")
    assert _steps(8) == [False] * 8
    boxes = [md for md, _ in shown[1:]]
    assert len(boxes) == 8
    for i, box in enumerate(boxes):
        assert f"echo step{i}" in box and f"the line step{i}" in box and f"reason {i}" in box


def test_why_and_how_to_fix_are_said_once_not_at_every_step(shown):
    lesson.start("99-demo")
    _steps(8)
    top, first, *later = (md for md, _ in shown)
    assert "no-engine mode" in top and f"unset {engine.NO_ENGINE_ENV}" in top  # the mode line: why, and the fix
    assert "no-engine mode" in first and "nothing is made up" in first    # the first step: why it is skipped
    assert "What you should see" in first                                 # ... and what the notes describe
    everything = "\n".join(md for md, _ in shown)
    assert everything.count(f"unset {engine.NO_ENGINE_ENV}") == 1
    assert everything.count("as on Binder") == 2                          # the mode line and the first step
    for box in later:
        assert "Skipped: needs a Docker engine" in box and "Read on" in box
        assert len(box) < len(first) / 2


def test_a_new_lesson_explains_again(shown):
    lesson.start("99-demo")
    _steps(3)
    lesson.start("98-other")
    _steps(1)
    assert "nothing is made up" in shown[-1][0]


def test_without_start_the_first_step_carries_the_fix_itself(shown, monkeypatch):
    monkeypatch.setattr(lesson, "_fix_shown", False)
    monkeypatch.setattr(lesson, "_skipped", 0)
    _steps(2)
    first, second = (md for md, _ in shown)
    assert f"unset {engine.NO_ENGINE_ENV}" in first and f"unset {engine.NO_ENGINE_ENV}" not in second


def test_plain_text_output_says_what_would_run(shown):
    lesson.start("99-demo")
    _steps(2)
    first, second = (text for _, text in shown[1:])
    assert "it would run: docker run --rm coursekit/busybox:v1 echo step0" in first
    assert "to run it for real:" in first and "as on Binder" in first
    assert "it would run: docker run --rm coursekit/busybox:v1 echo step1" in second
    assert "as on Binder" not in second


def test_the_fix_on_binder_does_not_only_say_unset_the_variable(shown):
    """On Binder there is no engine to go back to: the fix must say where one can be had."""
    fix = engine.status().fix
    assert "course.sh lab" in fix and f"unset {engine.NO_ENGINE_ENV}" in fix


def test_with_an_engine_a_step_runs_and_nothing_is_shown(monkeypatch):
    said = []
    monkeypatch.setattr(lesson, "show", lambda markdown, text: said.append(markdown))
    monkeypatch.setattr(engine, "available", lambda: True)
    assert lesson.needs_engine("docker run --rm coursekit/busybox:v1 true") is True
    assert said == []
