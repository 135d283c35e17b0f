"""The watchdog that removes a session's resources when its process dies.

A Jupyter kernel that is restarted or killed never runs its ``atexit`` handlers, so the
containers it started would linger. When coursekit first creates something, it starts
this small process with a pipe on its standard input. The pipe closes when the parent
dies, however it dies; the reaper then removes every resource labelled with the
parent's session and exits. (Testcontainers' "Ryuk" does the same job.)

    python -m coursekit.docker.reaper PARENT_PID SESSION_ID
"""
from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    pid, session = int(argv[0]), argv[1]
    try:
        sys.stdin.buffer.read()  # returns at EOF: the parent has gone (or closed us)
    except Exception:
        pass
    # The parent may still be finishing its own atexit clean-up: give it a moment.
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            break
        time.sleep(0.1)
    import shutil
    import tempfile

    shutil.rmtree(os.path.join(tempfile.gettempdir(), f"coursekit-{session}"), ignore_errors=True)  # scratch_dir()
    try:
        import docker

        from coursekit.docker.engine import remove_resources

        cl = docker.DockerClient(base_url=os.environ.get("COURSEKIT_REAPER_URL", "unix:///var/run/docker.sock"),
                                 timeout=30, version="auto")
        remove_resources(cl, session)
        cl.close()
    except Exception:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
