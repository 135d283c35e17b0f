"""``coursekit assign``: generate the student versions (``exercises/``) from ``solutions/``.

Solutions are the single source. In a solution notebook:

* **Solution regions** (code cells only). A line ``### BEGIN SOLUTION`` and a line
  ``### END SOLUTION`` (any indentation, nothing else on the line) enclose the solution.
  In the student version the region becomes, at the BEGIN line's indentation,
  ``# YOUR CODE HERE`` followed by the stub. Lines inside the region of the form
  ``### STUB <text>`` give the stub (``<text>`` keeps its own relative indentation, placed
  after the BEGIN line's indentation; a bare ``### STUB`` is an empty line); without any,
  the stub is ``...``. Unbalanced or nested markers, ``### STUB`` outside a region,
  near-misses such as ``## BEGIN SOLUTION`` or ``### BEGIN SOLUTION (q1)``, and markers in
  markdown/raw cells are errors naming the notebook, the cell (1-based, as counted in the
  solution) and the line: a typo must never leak a solution.
* **Check cells**: code cells tagged ``checks`` (see :mod:`coursekit.exercises.checks`). In the
  student version every function (or class) decorated with ``@hidden(...)`` is removed,
  decorators included, together with the comment lines directly above it; the rest of
  the source is kept verbatim (a blank line left doubled by the removal is dropped). The
  cell is made read-only and collapsed: ``metadata.editable = false``,
  ``metadata.deletable = false``, ``metadata.jupyter.source_hidden = true``. A ``hidden``
  call left anywhere else in a check cell is an error.
* Cells tagged ``solution-only`` are dropped.

Every output and execution count is cleared; the notebook metadata gets
``coursekit = {"format": 1, "assignment": <stem>, "generated_from": "solutions/<name>"}``
(:data:`FORMAT` is bumped when this layout changes); a first markdown cell (id
``coursekit-generated-note``) says the file is generated. Cell ids are the solution's, so
the output is byte-identical on every run: ``main(check=True)`` compares without writing.

Steps are small functions (:func:`stub_solution_regions`, :func:`strip_hidden_checks`,
:func:`make_exercise`) so each can be tested alone.

>>> print(stub_solution_regions("def f():\\n    ### BEGIN SOLUTION\\n    return 42\\n    ### END SOLUTION", "nb"))
def f():
    # YOUR CODE HERE
    ...
"""
from __future__ import annotations

import ast
import copy
import os
import re
from pathlib import Path

from . import notebooks
from ..errors import NotebookError

#: Version of the exercise metadata layout (``metadata.coursekit.format``).
FORMAT = 1
BEGIN, END, STUB = "### BEGIN SOLUTION", "### END SOLUTION", "### STUB"
YOUR_CODE = "# YOUR CODE HERE"
CHECKS_TAG, SOLUTION_ONLY_TAG = "checks", "solution-only"
NOTE_ID = "coursekit-generated-note"

_MARK_RE = re.compile(r"^([ \t]*)### (BEGIN|END) SOLUTION[ \t]*$")
_STUB_RE = re.compile(r"^([ \t]*)### STUB(?: (.*))?$")
_NEAR_RE = re.compile(r"^\s*#+\s*(BEGIN|END)\s*SOLUTION|^\s*#+\s*STUB\b", re.IGNORECASE)


class SolutionFormatError(NotebookError):
    """A solution notebook breaks the solution-region or check-cell format."""


def _err(where: str, line: int | None, problem: str, fix: str) -> SolutionFormatError:
    at = f", line {line}" if line else ""
    return SolutionFormatError(f"{where}{at}: {problem}", fix)


# --------------------------------------------------------------------------- steps


def stub_solution_regions(source: str, where: str) -> str:
    """Replace each solution region of a code cell's source by ``# YOUR CODE HERE`` + its stub."""
    out: list[str] = []
    region: tuple[str, int, list[str]] | None = None
    for n, line in enumerate(source.split("\n"), 1):
        mark = _MARK_RE.match(line)
        if mark:
            indent, kind = mark.groups()
            if kind == "BEGIN":
                if region is not None:
                    raise _err(where, n, f"'{BEGIN}' inside the region opened at line {region[1]}; regions cannot "
                                         "nest", f"close the first region with '{END}' before opening another")
                region = (indent, n, [])
            else:
                if region is None:
                    raise _err(where, n, f"'{END}' without a '{BEGIN}' before it",
                               f"add the missing '{BEGIN}' line, or remove this one")
                indent, _, stubs = region
                out.append(indent + YOUR_CODE)
                out.extend((indent + s) if s else "" for s in (stubs or ["..."]))
                region = None
            continue
        stub = _STUB_RE.match(line)
        if stub:
            if region is None:
                raise _err(where, n, f"'{STUB} ...' outside a solution region",
                           f"move it between '{BEGIN}' and '{END}'")
            region[2].append((stub.group(2) or "").rstrip())
            continue
        if _NEAR_RE.match(line):
            raise _err(where, n, f"{line.strip()!r} looks like a solution marker but is not exactly "
                                 f"'{BEGIN}', '{END}' or '{STUB} <code>'",
                       "write the marker exactly, alone on its line (any indentation)")
        if region is None:
            out.append(line)
    if region is not None:
        raise _err(where, region[1], f"'{BEGIN}' is never closed", f"add '{END}' after the solution")
    return "\n".join(out)


def _is_hidden_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Name) and target.id == "hidden") or \
        (isinstance(target, ast.Attribute) and target.attr == "hidden")


def strip_hidden_checks(source: str, where: str) -> str:
    """Remove every ``@hidden(...)``-decorated definition (with decorators and the comments
    just above), keeping the rest of the source verbatim."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise _err(where, exc.lineno, f"a check cell must be plain Python ({exc.msg})",
                   "fix the syntax (no %magics or !commands in check cells)") from None
    lines = source.split("\n")
    drop: set[int] = set()
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                any(_is_hidden_decorator(d) for d in node.decorator_list):
            start = min(d.lineno for d in node.decorator_list)
            while start > 1 and lines[start - 2].lstrip().startswith("#") and \
                    not _MARK_RE.match(lines[start - 2]):
                start -= 1
            ranges.append((start, node.end_lineno or node.lineno))
    for start, end in ranges:
        drop.update(range(start, end + 1))
    if not drop:
        kept = lines
    else:
        kept = []
        after_removal = False
        for n, line in enumerate(lines, 1):
            if n in drop:
                after_removal = True
                continue
            if after_removal and not line.strip() and (not kept or not kept[-1].strip()):
                continue  # don't leave two blank lines (or a leading blank) where a check was
            after_removal = False
            kept.append(line)
        while kept and not kept[-1].strip():
            kept.pop()
        if source.endswith("\n"):
            kept.append("")
    result = "\n".join(kept)
    try:
        left = ast.parse(result)
    except SyntaxError as exc:
        raise _err(where, exc.lineno, "removing the hidden checks leaves invalid Python (is a @hidden check the "
                                      "only statement of a block?)", "define hidden checks at the top level "
                                                                     "of the check cell") from None
    for node in ast.walk(left):
        if isinstance(node, ast.Call) and _is_hidden_decorator(node):
            raise _err(where, node.lineno, "hidden(...) is used other than as a decorator of a check function, so "
                                           "it would reach students", "write it as @hidden(\"q1\") above a def")
    return result


def lock_cell(cell) -> None:
    """Make a cell read-only, undeletable and collapsed in JupyterLab."""
    md = cell.setdefault("metadata", {})
    md["editable"] = False
    md["deletable"] = False
    jup = dict(md.get("jupyter") or {})
    jup["source_hidden"] = True
    md["jupyter"] = jup


def answer_cells(nb) -> dict[str, list[str]]:
    """question -> ids of the cells with a solution region that answer it (those since the previous
    check cell). For making test classes: a student who solved q1 has these cells as the solution has them."""
    import re

    from . import notebooks

    out: dict[str, list[str]] = {}
    pending: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = notebooks.source_of(cell)
        if CHECKS_TAG in notebooks.tags_of(cell):
            for q in re.findall(r'question\(\s*"(\w+)"', src):
                out.setdefault(q, []).extend(pending)
            pending = []
        elif BEGIN in src:
            pending.append(cell.id)
    return out


def unmarked(source: str) -> str:
    """A solution cell as its author runs it: the region markers and ``### STUB`` lines removed."""
    return "\n".join(ln for ln in source.split("\n")
                     if ln.strip() not in (BEGIN, END) and not ln.strip().startswith(STUB))


def _note(source_name: str) -> str:
    return (f"*Generated from `{source_name}` by `coursekit assign`; do not edit this file by hand "
            "(instructors: edit the solution and run `coursekit assign`). Learners: work here as usual, "
            "fill in each `# YOUR CODE HERE` and run `check(...)` to get feedback.*")


def make_exercise(nb, *, source_name: str, stem: str):
    """The student version of a solution notebook (a new notebook; ``nb`` is not changed)."""
    from nbformat.v4 import new_markdown_cell

    ex = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(ex.cells, 1):
        where = f"{source_name}, cell {i}"
        tags = notebooks.tags_of(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        src = notebooks.source_of(cell)
        if cell.cell_type == "code":
            src = stub_solution_regions(src, where)
            if CHECKS_TAG in tags:
                src = strip_hidden_checks(src, where)
                lock_cell(cell)
        else:
            for n, line in enumerate(src.split("\n"), 1):
                if _MARK_RE.match(line) or _STUB_RE.match(line) or _NEAR_RE.match(line):
                    raise _err(where, n, f"solution markers only work in code cells; this is a {cell.cell_type} "
                                         "cell", "move the solution into a code cell, or tag this cell "
                                                 f"'{SOLUTION_ONLY_TAG}'")
        cell.source = src
        cells.append(cell)
    note = new_markdown_cell(_note(source_name))
    note.id = NOTE_ID
    ex.cells = [note] + [c for c in cells if c.get("id") != NOTE_ID]
    notebooks.strip_outputs(ex)
    ex.metadata["coursekit"] = {"format": FORMAT, "assignment": stem, "generated_from": source_name}
    return ex


# --------------------------------------------------------------------------- command


def _display_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return f"solutions/{path.name}"


def main(*, sources=None, out: str | os.PathLike = "exercises", check: bool = False,
         root: str | os.PathLike = ".") -> list[Path]:
    """Generate ``<out>/<name>.ipynb`` for each solution (default: every ``solutions/*.ipynb``).

    sources: solution notebooks (paths relative to ``root``, or absolute); default all of
        ``<root>/solutions/*.ipynb``.
    out: the folder for the student versions, relative to ``root``.
    check: write nothing; return the exercise files that are missing or differ from a fresh
        generation (with the default sources, also generated exercises whose solution is gone).
        An empty list means ``exercises/`` is in sync.
    root: the course folder.

    Returns the exercise paths generated (or, with ``check=True``, the stale ones).
    A broken solution raises :class:`~coursekit.errors.NotebookError` or
    :class:`SolutionFormatError`.
    """
    root_p = Path(root)
    if sources is None:
        srcs = sorted((root_p / "solutions").glob("*.ipynb"))
    else:
        srcs = [Path(s) if Path(s).is_absolute() else root_p / s for s in sources]
    out_dir = root_p / out
    produced: list[Path] = []
    stale: list[Path] = []
    for src in srcs:
        name = _display_name(src, root_p)
        exercise = make_exercise(notebooks.read(src), source_name=name, stem=src.stem)
        dest = out_dir / src.name
        produced.append(dest)
        if check:
            try:
                same = dest.read_bytes() == notebooks.dumps(exercise).encode("utf-8")
            except OSError:
                same = False
            if not same:
                stale.append(dest)
        else:
            notebooks.write(exercise, dest)
    if check and sources is None and out_dir.is_dir():
        names = {p.name for p in produced}
        for p in sorted(out_dir.glob("*.ipynb")):
            if p.name in names:
                continue
            try:
                generated = "coursekit" in notebooks.read(p).metadata
            except NotebookError:
                generated = True
            if generated:
                stale.append(p)
    return stale if check else produced
