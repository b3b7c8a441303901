"""The API's listening socket, bound before anything else starts.

The daemon binds ``server.listen`` first: before it opens the database, starts a job
or says it is ready (the ``daemon_ready`` log line, systemd's READY=1). A port that
is taken, or an address this host does not have, is then ``ListenError`` naming the
address, and nothing has run. Uvicorn serves on the bound socket.
"""

from __future__ import annotations

import socket

from controller.errors import ControllerError

__all__ = ["ListenError", "bind"]


class ListenError(ControllerError):
    """``server.listen`` cannot be bound (taken, not this host's, not permitted)."""


def bind(listen: str, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``listen`` (``host:port``, ``[v6]:port``)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(
            f"cannot listen on {listen} (server.listen): {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock
