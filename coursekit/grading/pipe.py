"""Raw bytes both ways between two sockets, until either side closes: a tunnel once HTTP has upgraded.

Used on both sides of the sandbox's wall: by the gate (:mod:`coursekit.grading.gate.server`) after
the engine's ``101`` to an ``attach`` or ``exec start``, and by the worker inside the sandbox
(:mod:`coursekit.grading.worker.ports`) for a connection to a published port. Standard library
only: the worker imports it.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Callable

READ = 65536


def pipe(a: socket.socket, b: socket.socket, *, a_rest: bytes = b"", b_rest: bytes = b"",
         read_b: Callable[[int], bytes] | None = None, idle: float = 3600) -> None:
    """Copy ``a`` to ``b`` and ``b`` to ``a`` until both directions end.

    ``a_rest`` / ``b_rest``: bytes already read from ``a`` / ``b`` (sent on first); ``read_b``: how to read
    from ``b`` when something buffers it (an HTTP response's reader), else ``b.recv``.
    """
    for s in (a, b):
        s.settimeout(idle)

    def copy(read, dst, first: bytes):
        try:
            if first:
                dst.sendall(first)
            while True:
                data = read(READ)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=copy, args=(read_b or b.recv, a, b_rest), daemon=True)
    back.start()
    copy(a.recv, b, a_rest)
    back.join(idle)
