#!/usr/bin/env bash
# course.sh: set up everything the course needs, then
#   ./course.sh lab    open JupyterLab on the course (127.0.0.1 only)
#   ./course.sh test   run the whole test suite (extra arguments go to pytest)
#
# Set-up is idempotent: a second run only checks what is already there.
#  1. a Python virtual environment in .venv with coursekit and its dependencies;
#  2. a Docker engine: if none answers and this is Debian/Ubuntu as root, the engine is
#     installed from the OS packages (docker.io) and its daemon started; elsewhere the
#     script says how to get one (Docker Desktop), and `lab` carries on in no-engine mode;
#  3. the OS tools the lessons use where we can install them (QEMU and a kernel for the
#     VM lesson, debootstrap and busybox-static to build images without a registry);
#  4. the course's images (`coursekit images`: pulled where a registry answers, else built).
# COURSEKIT_NO_ENGINE=1 skips the engine and images (as on Binder).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
VENV=${COURSEKIT_VENV:-$ROOT/.venv}
DOCKERD_LOG=${COURSEKIT_DOCKERD_LOG:-/var/log/coursekit-dockerd.log}
# OS packages, Debian names. docker.io: the engine; the rest: see the header above.
ENGINE_PACKAGES="docker.io"
TOOL_PACKAGES="debootstrap busybox-static qemu-system-x86 ca-certificates"
# What the tests add: the browser the browser test drives.
TEST_PACKAGES="chromium"
PIP_TARGET=.   # `test` installs .[test]

say()  { printf '\033[1m[course]\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m[course]\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31m[course]\033[0m %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

debian_root() {
  [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1
}

APT_UPDATED=0
apt_install() {  # installs only what is missing
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing OS packages: ${missing[*]}"
  if [ $APT_UPDATED = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_python() {
  local py
  py=$(command -v python3 || true)
  [ -n "$py" ] || die "Python 3.10 or newer is needed: install python3 (and python3-venv), then run this again."
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "Python 3.10 or newer is needed; $("$py" --version) found."
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the Python environment in $VENV"
    "$py" -m venv "$VENV" || die "could not create a virtual environment: on Debian/Ubuntu install python3-venv."
  fi
  local want have=""
  want=$( (cat pyproject.toml; echo "$PIP_TARGET") | sha256sum | cut -c1-16)
  [ -f "$VENV/.coursekit-installed" ] && have=$(cat "$VENV/.coursekit-installed")
  if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import coursekit' 2>/dev/null; then
    say "installing coursekit and its dependencies (a few minutes the first time)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$PIP_TARGET" 2>&1 \
      | grep -v "is ignored: it is neither a file nor a directory" || true
    "$VENV/bin/python" -c 'import coursekit, docker, moto, nbval' || die "installing the Python packages failed (see above)."
    # No news pop-up over the lessons (JupyterLab asks to fetch news on first start).
    "$VENV/bin/jupyter" labextension disable --level=sys_prefix \
      "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
    echo "$want" > "$VENV/.coursekit-installed"
  fi
  export PATH="$VENV/bin:$PATH"
}

engine_answers() {
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
import sys
from coursekit import engine
st = engine.status(timeout=5)
sys.exit(0 if st.ok else 1)
EOF
}

engine_reason() {
  "$VENV/bin/python" -c 'from coursekit import engine; s = engine.status(timeout=5); print(s.reason); print("What to do:", s.fix)' 2>&1 || true
}

start_dockerd() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "starting the Docker engine (systemctl start docker)"
    systemctl start docker || true
  else
    say "starting the Docker engine (dockerd in the background, log: $DOCKERD_LOG)"
    # A socket or pid file left by a daemon that died would stop a new one from starting.
    if ! pgrep -x dockerd >/dev/null 2>&1; then
      rm -f /var/run/docker.pid
      setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
    fi
  fi
  for _ in $(seq 1 60); do
    engine_answers && return 0
    sleep 1
  done
  warn "the Docker engine did not answer within 60 s; the end of its log:"
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  return 1
}

setup_engine() {  # returns 1 when no engine can be had here
  if [ "${COURSEKIT_NO_ENGINE:-}" = 1 ]; then
    say "no-engine mode (COURSEKIT_NO_ENGINE=1): Docker steps will explain instead of running"
    return 1
  fi
  engine_answers && { say "Docker engine: answering"; return 0; }
  if debian_root; then
    command -v dockerd >/dev/null 2>&1 || apt_install $ENGINE_PACKAGES
    start_dockerd && return 0
  fi
  warn "no usable Docker engine: $(engine_reason | head -n 1)"
  case "$(uname -s)" in
    Darwin) warn "get one: install Docker Desktop for Mac, start it, and run this again." ;;
    MINGW*|MSYS*|CYGWIN*) warn "get one: install Docker Desktop for Windows (WSL 2 backend), start it, and run this again." ;;
    *) warn "get one: install Docker Engine from your distribution (e.g. 'sudo apt-get install docker.io') and start it, or install Docker Desktop; add yourself to the 'docker' group if needed. As root on Debian/Ubuntu this script does it for you." ;;
  esac
  return 1
}

setup_tools() {
  if debian_root; then
    apt_install $TOOL_PACKAGES
    [ "$PIP_TARGET" = ".[test]" ] && apt_install $TEST_PACKAGES
  fi
  "$VENV/bin/coursekit" vm-assets || warn "the VM lesson will show only the container side (see above)"
}

setup() {
  setup_python
  local have_engine=0
  setup_engine && have_engine=1
  setup_tools
  if [ $have_engine = 1 ]; then
    "$VENV/bin/coursekit" images || die "the course's images could not be provisioned (see above)."
  fi
  HAVE_ENGINE=$have_engine
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  lab)
    setup
    [ "$HAVE_ENGINE" = 1 ] || { warn "continuing in no-engine mode"; export COURSEKIT_NO_ENGINE=1; }
    extra=()
    [ "$(id -u)" = 0 ] && extra+=(--allow-root)
    say "opening JupyterLab on the course: press Ctrl-C twice to stop it"
    exec "$VENV/bin/jupyter" lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir="$ROOT" \
      "${extra[@]}" "$@" notebooks/00-welcome.ipynb
    ;;
  test)
    PIP_TARGET=".[test]"
    setup
    if [ "$HAVE_ENGINE" != 1 ] && [ "${COURSEKIT_NO_ENGINE:-}" != 1 ]; then
      die "the tests need a Docker engine (see above); to run only the tier without one, set COURSEKIT_NO_ENGINE=1."
    fi
    if [ "$HAVE_ENGINE" != 1 ]; then
      say "no engine: running the tests that need none (pytest -m 'not engine')"
      exec "$VENV/bin/python" -m pytest -m "not engine" "$@"
    fi
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *) usage ;;
esac
