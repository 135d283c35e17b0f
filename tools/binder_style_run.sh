#!/usr/bin/env bash
# A Binder-style run of the course, as close to mybinder.org as this machine allows:
#   * a fresh copy of the committed repository, owned by a non-root user with no access to Docker;
#   * set up ONLY from binder/: binder/apt.txt's packages installed as root (as repo2docker does),
#     the packages of binder/environment.yml (conda-forge names mapped to PyPI, installed with pip
#     into a fresh venv, since conda is not here), then binder/postBuild as the user (it fetches the
#     VM lesson's kernel into the user's home, under $WORK/home: a fresh home each run);
#   * every notebook in notebooks/ and solutions/ executed through binder/start (which sets
#     COURSEKIT_NO_ENGINE=1): under nbval, except lesson 01, which is executed on its own so that
#     its output can be read: the run fails unless lesson 01 really booted its VM.
# Usage (as root): tools/binder_style_run.sh [--worktree] [WORKDIR]   (default /tmp/coursekit-binder-run)
#   --worktree: copy the working tree as it is now (minus what .gitignore leaves out) instead of
#   cloning the last commit: to rehearse changes before they are committed.
# Differences from Binder: pip instead of conda; Debian instead of Ubuntu; the machine's apt lists
# are kept (see below).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FROM=commit
[ "${1:-}" = --worktree ] && { FROM=worktree; shift; }
WORK=${1:-/tmp/coursekit-binder-run}
USER_NAME=coursekit-binder
[ "$(id -u)" = 0 ] || { echo "run as root: it creates the non-root user $USER_NAME" >&2; exit 2; }
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_NAME"
rm -rf "$WORK"
mkdir -p "$WORK/home"
if [ "$FROM" = worktree ]; then
  mkdir "$WORK/repo"
  tar -C "$ROOT" --exclude-vcs --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./artifacts \
    --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=.pytest_cache \
    --exclude=.ipynb_checkpoints --exclude=.coursekit --exclude=.ruff_cache -cf - . | tar -C "$WORK/repo" -xf -
else
  git clone -q "$ROOT" "$WORK/repo"
fi
chown -R "$USER_NAME:$USER_NAME" "$WORK"

# binder/apt.txt, read as repo2docker reads it (one package per line, '#' starts a comment), installed
# as root. repo2docker runs `apt-get update`, installs, then deletes /var/lib/apt/lists/*. We install
# only what is missing and leave this machine's apt lists alone: deleting them would break apt for
# everything else here. Nothing later depends on them: `coursekit vm-assets` (in postBuild) keeps its
# own package lists in a temporary folder, exactly as it must on Binder, where the lists are gone.
apt_packages=$(sed 's/#.*//' "$WORK/repo/binder/apt.txt" | xargs)
echo "[binder-style] binder/apt.txt: $apt_packages"
missing=$(for p in $apt_packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done | xargs)
if [ -n "$missing" ]; then
  echo "[binder-style] apt-get install --no-install-recommends $missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; }
fi

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

UNSET=(-u DOCKER_HOST)   # keep the machine's pip configuration (PIP_*), drop Docker's and coursekit's settings
for v in $(compgen -e | grep '^COURSEKIT_' || true); do UNSET+=(-u "$v"); done
as_user() {
  setpriv --reuid "$USER_NAME" --regid "$USER_NAME" --init-groups \
    env "${UNSET[@]}" HOME="$WORK/home" PATH="$WORK/venv/bin:/usr/local/bin:/usr/bin:/bin" "$@"
}
cd "$WORK/repo"
as_user python3 -m venv "$WORK/venv"
as_user "$WORK/venv/bin/pip" install -q -r "$WORK/requirements.txt"
as_user bash binder/postBuild
kernel=$(ls "$WORK"/home/.cache/coursekit/vm/kernel/boot/vmlinuz-* 2>/dev/null | tail -n 1)
if [ -n "$kernel" ]; then
  echo "[binder-style] VM assets in the user's home: $(basename "$kernel"), owned by $(stat -c %U "$kernel")"
else
  echo "[binder-style] postBuild fetched no guest kernel into $WORK/home/.cache/coursekit/vm" >&2
fi

LESSON01=notebooks/01-containers-and-vms.ipynb
echo "[binder-style] executing every notebook through binder/start (no engine)"
as_user bash binder/start python -m pytest -q -p no:cacheprovider --ignore="$LESSON01" notebooks solutions
echo "[binder-style] executing $LESSON01 through binder/start (no engine), keeping its output"
as_user bash binder/start jupyter nbconvert --to notebook --execute --log-level=WARN \
  --output "$WORK/01-executed.ipynb" "$LESSON01"
as_user python - "$WORK/01-executed.ipynb" <<'EOF'
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
booted = [line for line in text.splitlines() if line.startswith(("booted in ", "the guest's kernel"))]
if len(booted) < 2:
    sys.exit("[binder-style] lesson 01 did NOT boot its VM; what it said about the VM:\n"
             + "\n".join(line for line in text.splitlines() if "VM" in line or "QEMU" in line))
print("[binder-style] lesson 01 booted its VM: " + "; ".join(booted))
EOF
