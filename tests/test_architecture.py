"""The house rules of coursekit's layout (ARCHITECTURE.md), checked on the code itself.

Every import counts, the ones inside functions too: a late import is still a dependency, so
it cannot hide a cycle or a forbidden arrow. Nothing here runs coursekit's code except the
subprocess tests at the end, which import parts of it in a clean interpreter.
"""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import coursekit

PKG = Path(coursekit.__file__).parent
ROOT = PKG.parent

#: What each subpackage may import of coursekit, besides itself (ARCHITECTURE.md says why).
ALLOWED = {
    "errors": set(),
    "ui": {"errors"},
    "exercises": {"errors", "ui"},
    "docker": {"errors", "ui"},
    "aws": {"errors", "ui", "docker"},
    "dockerfile": {"errors", "ui", "docker"},
    "orchestrate": {"errors", "ui", "docker"},
    "cicd": {"errors", "ui", "docker", "orchestrate", "aws", "dockerfile"},
    "grading": {"errors", "ui", "docker", "orchestrate", "dockerfile", "exercises"},
    "lessons": {"errors", "ui", "docker", "orchestrate", "dockerfile", "aws", "cicd", "exercises"},
    "lesson": {"errors", "ui", "docker", "exercises", "lessons"},
}
TOP_LEVEL = {"__init__.py", "__main__.py", "cli.py", "errors.py"}
#: Inside a subpackage, a module that may be imported where the rest of it may not.
WORKER = "coursekit.grading.worker"
WORKER_MAY_IMPORT = ("coursekit.errors", "coursekit.ui", "coursekit.exercises", "coursekit.grading.protocol",
                     "coursekit.grading.queue", "coursekit.grading.limits", "coursekit.grading.pipe",
                     "coursekit.dockerfile",
                     "coursekit.grading.worker", "coursekit.grading")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        if "apps" in p.relative_to(PKG).parts[:2] and p.relative_to(PKG).parts[:2] == ("cicd", "apps") \
                and p.name != "__init__.py":
            continue  # the sample apps a pipeline builds are data, not coursekit
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every coursekit import of a module."""
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "coursekit" or target.startswith("coursekit."):
                found.append((target, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("coursekit")]
    return found


def _targets(target: str, names: list[str]) -> list[str]:
    """The modules an import reaches: ``from coursekit.docker import engine`` reaches coursekit.docker.engine."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
    return subs or [target]


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


EDGES = {m: {(t, line) for target, names, line in _imports(m, p) for t in _targets(target, names)}
         for m, p in MODULES.items()}


def test_the_top_level_holds_only_the_entry_points():
    loose = sorted(p.name for p in PKG.glob("*.py"))
    assert set(loose) == TOP_LEVEL, f"modules belong in a subpackage: {sorted(set(loose) - TOP_LEVEL)}"
    assert {_area(m) for m in MODULES} - {""} - {"cli", "errors", "__main__"} == set(ALLOWED) - {"errors"}


@pytest.mark.parametrize("area", sorted(set(ALLOWED) - {"errors"}))
def test_each_subpackage_imports_only_what_its_rule_allows(area):
    wrong = sorted(f"{m}:{line} imports {t}" for m, edges in EDGES.items() if _area(m) == area
                   for t, line in edges if _area(t) not in ALLOWED[area] | {area, ""})
    assert not wrong, f"{area} may import only {sorted(ALLOWED[area])}:\n" + "\n".join(wrong)


def test_the_subpackages_form_a_graph_without_cycles():
    graph = defaultdict(set)
    for m, edges in EDGES.items():
        for t, _ in edges:
            if _area(m) in ALLOWED and _area(t) in ALLOWED and _area(m) != _area(t):
                graph[_area(m)].add(_area(t))
    assert not _cycles(graph), _cycles(graph)


def test_no_module_imports_itself_back_through_others():
    """The three cycles of the flat package (hidden by late imports) stay gone, and no new one appears."""
    graph = {m: {t for t, _ in edges if t != m and t in MODULES} for m, edges in EDGES.items()}
    assert not _cycles(graph), "import cycles: " + "; ".join(" -> ".join(c) for c in _cycles(graph))


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_only_the_docker_subpackage_imports_the_docker_sdk():
    wrong = []
    for m, p in MODULES.items():
        if _area(m) == "docker":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            wrong += [f"{m}:{node.lineno} imports {n}" for n in names if n == "docker" or n.startswith("docker.")]
    assert not wrong, "reach the SDK through coursekit.docker (engine, or sdk for its errors and types):\n" + \
        "\n".join(wrong)


def test_in_aws_only_the_relay_drives_the_engine():
    wrong = sorted(f"{m} imports {t}" for m, edges in EDGES.items() if _area(m) == "aws" and m != "coursekit.aws.relay"
                   for t, _ in edges if _area(t) == "docker")
    assert not wrong, wrong


def test_the_grading_worker_imports_only_what_runs_in_the_sandbox():
    wrong = sorted(f"{m}:{line} imports {t}" for m, edges in EDGES.items() if m.startswith(WORKER)
                   for t, line in edges if not t.startswith(WORKER_MAY_IMPORT))
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_used_outside_its_module():
    """A name another module needs is public (no leading underscore), in the module that owns it."""
    wrong = []
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text())
        aliases = {}
        for target, names, line in _imports(m, p):
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    wrong.append(f"{m}:{line} imports {target}.{n}")
                if f"{target}.{n}" in MODULES:
                    aliases[n] = f"{target}.{n}"
        for node in ast.walk(tree):
            if isinstance(node, ast.alias) and node.asname and f"{node.name}" in aliases:
                aliases[node.asname] = aliases[node.name]
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                wrong.append(f"{m}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_every_facade_says_what_it_offers_and_offers_it(package):
    mod = importlib.import_module(package)
    assert isinstance(getattr(mod, "__all__", None), (list, tuple)), f"{package}/__init__.py has no __all__"
    for name in mod.__all__:
        if f"{package}.{name}" in MODULES:  # a submodule: `from package import name` imports it...
            sub = importlib.import_module(f"{package}.{name}")
            assert getattr(mod, name) is sub, f"{package}.{name} is hidden by another object of that name"
        else:  # ...anything else the facade holds (lazy facades load it now)
            assert getattr(mod, name) is not None, f"{package}.{name}"
    hidden = [n for n in vars(mod) if f"{package}.{n}" in MODULES
              and vars(mod)[n] is not importlib.import_module(f"{package}.{n}")]
    assert not hidden, f"{package} has names that hide its submodules: {hidden}"


def test_the_flat_names_the_lessons_use_are_the_modules_they_name():
    import coursekit as ck

    for flat, target in ck.FLAT.items():
        module = importlib.import_module(target)
        assert getattr(ck, flat) is module, flat
        assert importlib.import_module(f"coursekit.{flat}") is module, f"import coursekit.{flat}"
    for name, where in ck.NAMES.items():
        mod, attr = where.split(":")
        assert getattr(ck, name) is getattr(importlib.import_module(mod), attr), name
    assert set(ck.SUBPACKAGES) == set(ALLOWED) - {"errors"}


def test_the_course_itself_uses_the_new_dotted_names():
    """``import coursekit.checks`` works for notebooks handed out earlier; the course's own files never need it."""
    import coursekit as ck

    old = sorted(ck.FLAT)
    pattern = "|".join(old)
    files = [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*.ipynb"), *ROOT.glob("exercises/*.ipynb"),
             *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py"), *ROOT.glob("tools/*.py"), *PKG.rglob("*.py")]
    files = [f for f in files if f not in (Path(__file__), PKG / "__init__.py")]  # (these two name them on purpose)
    import re

    dotted = re.compile(rf"(?:from|import) coursekit\.({pattern})\b")
    wrong = []
    for f in files:
        text = f.read_text()
        if f.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
        wrong += [f"{f.relative_to(ROOT)}: coursekit.{m[1]}" for m in dotted.finditer(text)]
    assert not wrong, "\n".join(wrong)


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_coursekit_loads_nothing_heavy():
    loaded = _loaded_after("import coursekit")
    ours = [m for m in loaded if m.startswith("coursekit")]
    assert ours == ["coursekit", "coursekit.errors"], ours
    assert not {"docker", "boto3", "botocore", "moto", "matplotlib", "nbformat", "IPython"} & set(loaded)


def test_the_worker_never_loads_the_docker_sdk_nor_the_engine():
    loaded = _loaded_after("import coursekit.grading.worker.serve, coursekit.grading.worker.kernel, "
                           "coursekit.grading.worker.hygiene")
    assert "docker" not in loaded and not any(m.startswith("docker.") for m in loaded)
    assert not [m for m in loaded if m.startswith("coursekit.") and not m.startswith(WORKER_MAY_IMPORT)]


def test_exercises_load_only_the_standard_library_and_nbformat():
    loaded = _loaded_after("import coursekit.exercises.checks, coursekit.exercises.assign, "
                           "coursekit.exercises.notebooks")
    ours = {m for m in loaded if m.startswith("coursekit.")}
    assert {_area(m) for m in ours} <= {"exercises", "errors", "ui"}, ours
    assert not {"docker", "boto3", "moto", "matplotlib", "IPython", "nbclient"} & set(loaded)


def test_no_name_is_undefined_or_unused():
    """After a move, the first thing to break is a name: ruff's pyflakes rules find every one (no code is run)."""
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.exists(), "ruff is part of the test extra: pip install -e '.[test]' (./course.sh test does)"
    out = subprocess.run([str(ruff), "check", "--select", "F,E9", "--output-format", "concise", "coursekit", "tests",
                          "bench", "tools", "conftest.py"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
