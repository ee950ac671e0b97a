"""The `ramit` command: runs in its own process, or as a fork of the invocation's warm server.

A pipeline job is a fresh Python process, and on a small CPU machine its imports cost more than many
jobs' work: `import torch` takes about 2 s here and the `torch._dynamo` that `torch.optim` and ptflops
pull in 1.5 s more, while evaluating a model on the embedded test set takes under 1 s. The Snakefile
therefore starts one server per invocation (`ramit.preload`, in `onstart`) that imports all of that
once and forks a child per job:

    ramit <args> (this module, stdlib only)            preload server (torch etc. imported, idle)
      connect to $RAMIT_PRELOAD's Unix socket  ---->   accept
      send argv, environment, cwd and the fds
      of stdin/stdout/stderr (SCM_RIGHTS)      ---->   fork(): the child takes over the job's fds,
                                                       environment, cwd and argv, then runs ramit.cli
      "pid N": forward SIGINT/SIGTERM/SIGHUP   <----
      "status S" (the child's waitpid status)  <----   waitpid(child)
      exit with the child's code, or die by its signal

The job's output goes straight to the files Snakemake opened for it; the child's exit status is the
job's. Anything that does not answer (no $RAMIT_PRELOAD, another host's server, a stale socket,
`RAMIT_PRELOAD=off`) runs the command in this process instead, exactly as before: the server is an
optimisation, never a requirement.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

ENV = "RAMIT_PRELOAD"  # "<hostname>:<socket path>" of this invocation's server
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_HEADER = struct.Struct("!I")  # length of the JSON request that follows


def address(socket_path: str) -> str:
    return f"{socket.gethostname()}:{socket_path}"


def _server_socket() -> str | None:
    """The socket to try, or None: unset, switched off, or a server on another host (a cluster job)."""
    value = os.environ.get(ENV, "")
    host, sep, path = value.partition(":")
    if not sep or value == "off" or host != socket.gethostname():
        return None
    return path


def encode_request(argv: list[str]) -> bytes:
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    return _HEADER.pack(len(body)) + body


def _read_line(conn: socket.socket, buf: bytearray) -> str | None:
    while b"\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode()


def _exit_like(status: int) -> None:
    """Leave the way the child did: its exit code, or killed by the same signal (the shell sees 128+n)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        sys.exit(128 + sig)
    sys.exit(os.waitstatus_to_exitcode(status))


def run_in_server(path: str, argv: list[str]) -> bool:
    """Run `argv` as a fork of the server at `path`; False when no server took the job (nothing ran)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = encode_request(argv)
        sent = socket.send_fds(conn, [request], [0, 1, 2])
        conn.sendall(request[sent:])  # a large environment may not go in one message
    except OSError:  # no socket, a dead server's socket, or a full backlog: run it here
        conn.close()
        return False
    buf = bytearray()
    try:
        line = _read_line(conn, buf)
    except OSError:
        line = None
    if line is None or not line.startswith("pid "):
        conn.close()  # the server refused or failed to fork: the job has not started
        return False
    pid = int(line.split()[1])
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # it has just exited: its status is on the way
            pass

    for sig in _FORWARDED:  # Snakemake stops a job by signalling its shell's process group
        signal.signal(sig, forward)
    try:
        line = _read_line(conn, buf)
    except OSError:
        line = None
    if line is None or not line.startswith("status "):
        print(f"ramit: the preload server went away while running this job (pid {pid}); "
              f"its outcome is unknown", file=sys.stderr)
        sys.exit(1)
    _exit_like(int(line.split()[1]))
    return True  # not reached


def main() -> None:
    path = _server_socket()
    if path is not None:
        run_in_server(path, sys.argv[1:])
    from ramit.cli import app

    app(prog_name="ramit")


if __name__ == "__main__":
    main()
