"""Reading, writing and cleaning notebook files, with errors a learner can act on.

Used by ``coursekit assign`` (generating ``exercises/`` from ``solutions/``), by grading
(reading submissions) and by the test that keeps committed notebooks clean.

* :func:`read` returns an ``nbformat`` v4 notebook or raises
  :class:`~coursekit.errors.NotebookError` saying which file, what is wrong (``not JSON:
  line 12, column 5: Expecting ',' delimiter``; ``JSON, but not a notebook: no 'cells'
  list``) and how to fix it (restore it with ``git checkout -- <path>``, or re-save it from
  JupyterLab).
* :func:`dumps` / :func:`write` serialise deterministically: the same notebook always
  gives the same bytes (keys sorted, one-space indent, ``\\n`` line endings, a final
  newline, as JupyterLab writes them), so generated files can be compared byte for byte.
* :func:`strip_outputs` clears outputs, execution counts and execution timings;
  :func:`dirty_cells` / :func:`is_clean` say whether a notebook is committed clean.

Cell ids: a notebook older than format 4.5 (or a cell without an ``id``) gets ids
derived from the cell's position, never random ones, so reading the same file twice
gives the same notebook.

>>> import nbformat
>>> nb = nbformat.v4.new_notebook()
>>> nb.cells.append(nbformat.v4.new_code_cell("1 + 1", execution_count=3))
>>> is_clean(nb)
False
>>> is_clean(strip_outputs(nb))
True
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterable

from ..errors import NotebookError

#: Cell metadata written by tools at run time: never part of a clean notebook.
RUNTIME_CELL_METADATA = ("execution", "ExecuteTime")
#: Notebook metadata written at run time (widget state saved by JupyterLab).
RUNTIME_NOTEBOOK_METADATA = ("widgets",)


def _fix(path: str | os.PathLike) -> str:
    return (f"restore it from version control (`git checkout -- {path}`), or open it in JupyterLab "
            "and save it again (File > Save Notebook) if JupyterLab can still open it")


def _ensure_ids(nb: dict, salt: str = "") -> None:
    """Give every cell a unique id, derived from its position (never random)."""
    cells = nb.get("cells", [])
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        cid = cell.get("id")
        if not isinstance(cid, str) or not cid or cid in seen:
            n = 0
            while True:
                cid = hashlib.sha1(f"{salt}:{i}:{n}".encode()).hexdigest()[:12]
                if cid not in seen:
                    break
                n += 1
            cell["id"] = cid
        seen.add(cid)
    if nb.get("nbformat") == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5


def reads(text: str, path: str | os.PathLike = "<notebook>"):
    """Parse notebook JSON text; ``path`` is only used in error messages."""
    import nbformat
    from nbformat.validator import ValidationError

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not a notebook: it is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "it may have been cut short, or merged with conflict markers", _fix(path)) from None
    if not isinstance(data, dict):
        raise NotebookError(f"{path} is JSON, but not a notebook: the top level is a {type(data).__name__}, "
                            "not an object with 'cells' and 'nbformat'", _fix(path))
    missing = [k for k in ("nbformat", "cells", "metadata") if k not in data]
    if missing or not isinstance(data.get("cells"), list) or not isinstance(data.get("nbformat"), int):
        what = ", ".join(repr(k) for k in missing) if missing else "a well-formed 'cells' list or 'nbformat' number"
        raise NotebookError(f"{path} is JSON, but not a notebook: it has no {what}", _fix(path))
    if data["nbformat"] != 4:
        raise NotebookError(f"{path} uses notebook format {data['nbformat']}; coursekit reads format 4 "
                            "(JupyterLab 3 and later)",
                            "open it in JupyterLab and save it again, which converts it")
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict) or "cell_type" not in cell or "source" not in cell:
            raise NotebookError(f"{path} is JSON, but not a valid notebook: cell {i + 1} has no 'cell_type' "
                                "or 'source'", _fix(path))
    _ensure_ids(data)
    from nbformat.v4.nbjson import JSONReader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nbformat.from_dict(data))
    except ValidationError as exc:
        parts = list(getattr(exc, "absolute_path", []) or [])
        if len(parts) >= 2 and parts[0] == "cells" and isinstance(parts[1], int):
            parts[:2] = [f"cell {parts[1] + 1}"]
        where = "/".join(str(p) for p in parts)
        first = str(getattr(exc, "message", exc)).splitlines()[0][:200]
        raise NotebookError(f"{path} is not a valid notebook ({where or 'top level'}: {first})", _fix(path)) from None
    return JSONReader().to_notebook(data)  # joins multi-line sources, drops transient fields


def read(path: str | os.PathLike):
    """Read a notebook file (format 4), raising :class:`NotebookError` with a fix if it is broken."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise NotebookError(f"there is no notebook at {path}", "check the file name and folder") from None
    except IsADirectoryError:
        raise NotebookError(f"{path} is a folder, not a notebook", "give the path of an .ipynb file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"{path} is not a notebook: it is not UTF-8 text (byte {exc.start})", _fix(path)) from None
    if not text.strip():
        raise NotebookError(f"{path} is empty, not a notebook", _fix(path))
    return reads(text, path)


def dumps(nb) -> str:
    """The notebook as JSON text, deterministically (the format JupyterLab saves, plus a final newline)."""
    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def write(nb, path: str | os.PathLike) -> bool:
    """Write ``nb`` to ``path`` (``\\n`` line endings). Returns False when the file already had these bytes."""
    p = Path(path)
    data = dumps(nb).encode("utf-8")
    try:
        if p.read_bytes() == data:
            return False
    except OSError:
        pass
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)
    return True


def strip_outputs(nb):
    """Clear outputs, execution counts and run-time metadata, in place; returns ``nb``."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in RUNTIME_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    for key in RUNTIME_NOTEBOOK_METADATA:
        nb.get("metadata", {}).pop(key, None)
    return nb


def dirty_cells(nb) -> list[str]:
    """What keeps ``nb`` from being clean, one line per problem (empty when clean)."""
    problems = []
    for i, cell in enumerate(nb.cells, 1):
        if cell.get("cell_type") == "code":
            if cell.get("outputs"):
                problems.append(f"cell {i} has outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"cell {i} has an execution count")
        for key in RUNTIME_CELL_METADATA:
            if key in cell.get("metadata", {}):
                problems.append(f"cell {i} has run-time metadata {key!r}")
    for key in RUNTIME_NOTEBOOK_METADATA:
        if key in nb.get("metadata", {}):
            problems.append(f"the notebook metadata has {key!r} (saved widget state)")
    return problems


def is_clean(nb_or_path) -> bool:
    """True when the notebook (or the file at that path) has no outputs, counts or run-time metadata."""
    nb = read(nb_or_path) if isinstance(nb_or_path, (str, os.PathLike)) else nb_or_path
    return not dirty_cells(nb)


def clean_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Strip outputs from each notebook file in place; returns the files that changed."""
    changed = []
    for path in paths:
        if write(strip_outputs(read(path)), path):
            changed.append(Path(path))
    return changed


def source_of(cell) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def tags_of(cell) -> list[str]:
    """A cell's tags (``metadata.tags``), or an empty list."""
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, (list, tuple)) else []
