"""docs/instructors.md keeps up with the lessons: one section per lesson, with the notebook's own time."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from coursekit.exercises import notebooks

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "instructors.md").read_text()
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _estimated_time(path: Path) -> str:
    md = "\n".join(c.source for c in notebooks.read(path).cells if c.cell_type == "markdown")
    m = re.search(r"\*\*Estimated time:\*\*\s*([^\n]+)", md)
    assert m, f"{path.name} states no estimated time"
    return m.group(1).strip().rstrip(".")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_a_section_with_its_time(path):
    heading = re.search(rf"^### {re.escape(path.stem)} \((.+)\)$", GUIDE, re.M)
    assert heading, f"docs/instructors.md has no '### {path.stem} (<time>)' section"
    assert heading.group(1) == _estimated_time(path), \
        f"the guide says {heading.group(1)!r} for {path.stem}, the notebook says {_estimated_time(path)!r}"


def test_every_section_names_a_lesson_that_exists_or_says_planned():
    for stem, when in re.findall(r"^### (\d\d-[\w-]+) \((.+)\)$", GUIDE, re.M):
        assert (ROOT / "notebooks" / f"{stem}.ipynb").exists() or when == "planned", \
            f"docs/instructors.md describes {stem}, which is not in notebooks/"


def test_troubleshooting_covers_what_doctor_reports():
    for finding in ("docker engine", "image registry", "virtual machine (QEMU)", "not installed"):
        assert finding in GUIDE, f"the troubleshooting table does not cover doctor's {finding!r}"
