"""pyproject.toml, environment.yml and binder/ describe the same environment."""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"docker-py": "docker", "python-kubernetes": "kubernetes"}
NOT_PYTHON_PACKAGES = {"python", "pip"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", req)
    assert m, f"cannot read requirement {req!r}"
    name, spec = m.group(1).lower(), m.group(2).replace(" ", "")
    return name, spec


def pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(_split(r) for r in data["project"]["dependencies"])


def conda_deps(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert "conda-forge" in env.get("channels", []), f"{path} should use conda-forge"
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for req in dep.get("pip", []):
                name, spec = _split(req)
                out[name] = spec
            continue
        name, spec = _split(dep.replace("=", "==", 1) if re.match(r"^[\w\-]+=[^=]", dep) else dep)
        if name in NOT_PYTHON_PACKAGES:
            continue
        out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def test_environment_yml_matches_pyproject():
    assert conda_deps(ROOT / "environment.yml") == pyproject_deps()


def test_binder_environment_matches_pyproject():
    assert conda_deps(ROOT / "binder" / "environment.yml") == pyproject_deps()


def test_disagreement_is_detected(tmp_path):
    """The comparison really notices a dependency that one file lacks."""
    text = (ROOT / "environment.yml").read_text().replace("  - boto3>=1.34", "")
    (tmp_path / "environment.yml").write_text(text)
    assert conda_deps(tmp_path / "environment.yml") != pyproject_deps()


def test_binder_scripts():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"^set -e", post, re.M), "postBuild must stop at the first failing command"
    assert "pip install" in post and " -e ." in post, "postBuild must install coursekit"
    start = (ROOT / "binder" / "start").read_text().strip().splitlines()
    assert start[-1].strip() == 'exec "$@"', "binder/start must end with exec \"$@\""
    for f in ("postBuild", "start"):
        assert os.access(ROOT / "binder" / f, os.X_OK), f"binder/{f} must be executable"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(\./course\.sh \w+)\s*$", readme, re.M)
    assert sorted(set(commands)) == ["./course.sh lab", "./course.sh test"], commands
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert any("./course.sh test" in ln for ln in ci), ".ci/run must call the README's test command"
