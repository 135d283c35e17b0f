#!/usr/bin/env bash
# A Binder-style run of the course, as close to mybinder.org as this machine allows:
#   * a fresh copy of the committed repository, owned by a non-root user with no access to Docker;
#   * set up ONLY from binder/: the packages of binder/environment.yml (conda-forge names mapped to
#     PyPI, installed with pip into a fresh venv, since conda is not here), then binder/postBuild;
#   * every notebook in notebooks/ and solutions/ executed through binder/start (which sets
#     COURSEKIT_NO_ENGINE=1), under nbval.
# Usage (as root): tools/binder_style_run.sh [WORKDIR]     (default /tmp/coursekit-binder-run)
# Differences from Binder: pip instead of conda; Debian instead of Ubuntu; no apt.txt packages.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/coursekit-binder-run}
USER_NAME=coursekit-binder
[ "$(id -u)" = 0 ] || { echo "run as root: it creates the non-root user $USER_NAME" >&2; exit 2; }
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_NAME"
rm -rf "$WORK"
mkdir -p "$WORK"
git clone -q "$ROOT" "$WORK/repo"
chown -R "$USER_NAME:$USER_NAME" "$WORK"

# binder/environment.yml -> a pip requirements list (conda-forge names that differ from PyPI's mapped)
python3 - "$WORK/repo/binder/environment.yml" > "$WORK/requirements.txt" <<'EOF'
import re, sys
names = {"docker-py": "docker", "python-kubernetes": "kubernetes"}
skip = {"python", "pip"}
in_deps = False
for line in open(sys.argv[1]):
    if re.match(r"^\S", line):  # a top-level key: name, channels, dependencies
        in_deps = line.startswith("dependencies:")
        continue
    m = in_deps and re.match(r"^\s*-\s+([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*([<>=!~][^#]*)?", line)
    if not m or m.group(1) in skip or line.strip().endswith("pip:"):
        continue
    spec = (m.group(2) or "").strip()
    print(names.get(m.group(1), m.group(1)) + spec.replace(" ", ""))
EOF
chown "$USER_NAME" "$WORK/requirements.txt"
echo "[binder-style] packages from binder/environment.yml:"; sed 's/^/  /' "$WORK/requirements.txt"

as_user() {  # keep the machine's pip configuration (PIP_* variables), drop everything Docker-related
  setpriv --reuid "$USER_NAME" --regid "$USER_NAME" --init-groups \
    env -u DOCKER_HOST HOME="/home/$USER_NAME" PATH="$WORK/venv/bin:/usr/local/bin:/usr/bin:/bin" "$@"
}
cd "$WORK/repo"
as_user python3 -m venv "$WORK/venv"
as_user "$WORK/venv/bin/pip" install -q -r "$WORK/requirements.txt"
as_user bash binder/postBuild
echo "[binder-style] executing every notebook through binder/start (no engine)"
as_user bash binder/start python -m pytest -q -p no:cacheprovider notebooks solutions
