"""The preload server: one per Snakemake invocation, torch and ramit imported once, a fork per job.

    python -m ramit.preload <socket path>        # the Snakefile's onstart does this (ramit/pipeline/smk.py)

`ramit/launch.py` (the `ramit` command) explains the protocol and why. What the child does to be the
job a fresh process would have been: it takes the job's stdin/stdout/stderr, environment, working
directory and argv; resets the signal handlers to Python's defaults; sets torch's threads from the
job's OMP_NUM_THREADS (Snakemake's `threads:`), as torch does at start-up; reseeds Python's and
NumPy's global generators; and on exit waits for its threads, runs the atexit handlers and flushes,
as the interpreter would. A daemon thread watches the client's socket: if the `ramit` process that
asked for the job dies (even by SIGKILL), the job is terminated with it.

Fork safety: the server never runs a torch operation, so no OpenMP pool, oneDNN state or CUDA context
exists to be copied. The only threads importing starts are OpenBLAS's idle pools (NumPy's, SciPy's),
which re-create themselves in a forked child (pthread_atfork), as in every DataLoader worker torch
forks; the server refuses to serve (jobs then run the ordinary way) if an import started a Python
thread, whose lock state a fork could copy mid-operation. Code is imported once: a source file edited during an invocation takes effect at the next
one. The server stops accepting jobs on SIGTERM or when its parent (Snakemake) is gone, and exits once
its last job has.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

from ramit.launch import _HEADER

# What the stages import: loaded once, here. The report (pandas, matplotlib) is one job: not worth it.
PRELOAD = ("torch", "torch._dynamo", "torch.optim", "numpy", "PIL.Image", "safetensors.torch", "ptflops",
           "ramit.cli", "ramit.pipeline.run", "ramit.models", "ramit.train.loop", "ramit.evaluate.evaluate",
           "ramit.evaluate.profile", "ramit.data.degrade", "ramit.data.fetch")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] preload {os.getpid()}: {msg}", file=sys.stderr, flush=True)


def _default_threads(env: dict, fallback: int) -> int:
    """What torch picks at start-up in a process with this environment (OMP_NUM_THREADS, then MKL's)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        v = env.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return fallback


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    try:
        while len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
            chunk = conn.recv(1 << 16)
            if not chunk:
                raise ValueError("truncated request")
            data += chunk
        if len(fds) != 3:
            raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
        req = json.loads(data[_HEADER.size:_HEADER.size + _HEADER.unpack_from(data)[0]])
        return req, fds
    except Exception:
        for fd in fds:
            os.close(fd)
        raise


class Server:
    def __init__(self, path: str):
        self.path = path
        self.parent = os.getppid()
        self.children: dict[int, tuple[socket.socket, str, float]] = {}
        self.stopping = False
        self.listener: socket.socket | None = None
        self.wake_r = self.wake_w = -1
        self.default_threads = 1

    # ---- start-up
    def preload(self) -> bool:
        from ramit.runtime import tune_allocator

        tune_allocator()  # before torch allocates: the children inherit the heap settings
        t = time.perf_counter()
        import importlib

        for name in PRELOAD:
            importlib.import_module(name)
        import torch

        self.default_threads = torch.get_num_threads()
        import threading

        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if others:
            log(f"importing started Python thread(s) {others}; not serving (jobs run the ordinary way)")
            return False
        log(f"imported {len(PRELOAD)} modules in {time.perf_counter() - t:.1f} s (torch {torch.__version__})")
        return True

    def listen(self) -> None:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(tmp)
        self.listener.listen(64)
        os.replace(tmp, self.path)  # clients see the socket only once it accepts
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler (not SIG_IGN): children stay reapable
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs; Snakemake then stops us
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        log(f"serving on {self.path}")

    def _stop(self, *_):
        self.stopping = True

    # ---- the loop
    def serve(self) -> None:
        while True:
            if os.getppid() != self.parent:
                self.stopping = True
            if self.stopping and self.listener is not None:
                self.listener.close()
                self.listener = None
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                log(f"stopped accepting; {len(self.children)} job(s) still running")
            self._reap()
            if self.stopping and not self.children:
                break
            watch = [self.wake_r] + ([self.listener] if self.listener is not None else [])
            ready, _, _ = select.select(watch, [], [], 1.0)
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            if self.listener is not None and self.listener in ready:
                self._accept()
        log("exiting")

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)  # a client sends its request at once; a stuck one must not stall the server
        try:
            req, fds = _recv_request(conn)
        except (OSError, ValueError) as e:
            log(f"bad request ({e}); dropped")
            conn.close()
            return
        try:
            pid = os.fork()
        except OSError as e:  # out of processes or memory: the client runs the job itself
            log(f"fork failed ({e}); the job runs in its own process")
            pid = -1
        if pid == 0:
            self._become_job(conn, req, fds)  # never returns
        for fd in fds:
            os.close(fd)
        if pid < 0:
            conn.close()
            return
        argv = " ".join(req["argv"])
        self.children[pid] = (conn, argv, time.perf_counter())
        log(f"job {pid} started: ramit {argv}")
        try:
            conn.settimeout(None)
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:  # the client is gone: the child's watchdog ends the job
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                continue
            conn, argv, t0 = self.children.pop(pid)
            log(f"job {pid} ended: exit {os.waitstatus_to_exitcode(status)} after {time.perf_counter() - t0:.1f} s")
            try:
                conn.sendall(f"status {status}\n".encode())
            except OSError:
                pass
            conn.close()

    # ---- in the child
    def _become_job(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        rc = 1
        try:
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.set_wakeup_fd(-1)
            self.listener.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            for other, _, _ in self.children.values():
                other.close()
            sys.stdout.flush()
            sys.stderr.flush()
            for target, fd in zip((0, 1, 2), fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            sys.argv = ["ramit", *req["argv"]]
            _fresh_process_state(self.default_threads)
            _watch_client(conn)
            rc = _run_cli(req["argv"])
        except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the server loop
            import traceback

            traceback.print_exc()
        finally:
            os._exit(rc & 0xFF if rc >= 0 else 1)


def _fresh_process_state(default_threads: int) -> None:
    import random

    import numpy as np
    import torch

    from ramit import runtime

    buffered = not os.environ.get("PYTHONUNBUFFERED")
    sys.stdout.reconfigure(line_buffering=os.isatty(1), write_through=not buffered)
    sys.stderr.reconfigure(line_buffering=True)
    torch.set_num_threads(_default_threads(os.environ, default_threads))
    random.seed()  # the server's state would be every job's
    np.random.seed()
    runtime.reapply_env()  # the job's environment replaced the server's: THP must be asked for again


def _watch_client(conn: socket.socket) -> None:
    import threading

    conn.settimeout(None)  # the server's 10 s request timeout was copied with the socket

    def watch():
        try:
            gone = not conn.recv(1)
        except OSError:
            gone = True
        if gone:  # the `ramit` process that asked for this job was killed: so is the job
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ramit-preload-client-watch", daemon=True).start()


def _run_cli(argv: list[str]) -> int:
    """ramit.cli as the interpreter would run it: the same exit code, traceback and exit handlers."""
    import atexit
    import threading

    from ramit.cli import app

    rc = 0
    try:
        app(args=argv, prog_name="ramit")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            rc = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            rc = 1
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        rc = 130
    except BaseException:  # noqa: BLE001
        sys.excepthook(*sys.exc_info())
        rc = 1
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return rc


def start_server(invocation: str, log_file: str) -> "subprocess.Popen | None":
    """Start this invocation's server in the background and point the jobs at it ($RAMIT_PRELOAD, which
    they inherit). Returns at once: jobs that start before the server is ready run the ordinary way.
    `RAMIT_PRELOAD=off` in the environment keeps it off."""
    import subprocess
    import tempfile

    from ramit.launch import ENV, address

    if os.environ.get(ENV) == "off":
        return None
    # a Unix socket path has a 107-byte limit: the temp dir, not the (possibly deep) project
    path = os.path.join(tempfile.gettempdir(), f"ramit-preload-{invocation[:16]}.sock")
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ramit.preload", path], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    os.environ[ENV] = address(path)
    return proc


def stop_server(proc: "subprocess.Popen | None", timeout: float = 30.0) -> None:
    """SIGTERM: the server stops accepting, waits for its running jobs (none, at an invocation's end)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except Exception:  # noqa: BLE001 - never hang the end of an invocation on it
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ramit.preload <socket path>", file=sys.stderr)
        return 2
    server = Server(args[0])
    if not server.preload():
        return 1
    server.listen()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
