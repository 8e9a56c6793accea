"""Several processes serving one port (`modelinv serve --workers N`, POSIX).

A server process answers only as fast as its interpreter lock lets it: the HTTP handling, the input checks and the
query log are Python, and one process runs one thread of Python at a time, whatever `--threads` says. Several
processes use several cores. The parent loads the checkpoint and the reference statistics once, listens on the
port and forks the workers; each opens its own database connections, seeds its own random state and runs the
application with uvicorn on its listening socket (on Linux one per worker, sharing the port: `listen`), and the
kernel hands each new connection to one of them. A worker that dies is replaced on the same socket, where the
connections that came meanwhile wait.

What one process guarantees holds across the workers:

- every answered input is committed before its answer is sent, with the key's budget charged in the same
  transaction, which holds the database's write lock (a lock of the database, not of a process): a budget is
  never overrun, whichever workers answer the key;
- a key's rate limit applies to all workers together: the token buckets are shared (modelinv.serve.limits.SharedLimiter);
- the perturbation detector measures each input against the key's last inputs whichever worker answered them
  (modelinv.serve.querylog);
- a revoked key is refused by every worker from its next request (each reads the key from the database);
- kill -9 of the server (the parent) kills every worker at once (PR_SET_PDEATHSIG on Linux; elsewhere each
  worker checks twice a second that its parent lives), and whatever was answered is in the log; a worker that
  dies alone is replaced;
- noise defenses: worker n (counting replacements) seeds its random state from the seed sequence (seed, n), so
  no two workers, and no replacement, replay the same noise.

The shared state (rate buckets, the last inputs of each key) lives in `DB.workers-PID`, a directory of mode 0700
beside the database, removed when the server stops; one left behind by a killed server is removed at the next start.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from modelinv.errors import ModelinvError
from modelinv.seeding import seed_everything
from modelinv.serve.app import Served, create_app
from modelinv.serve.keys import KeyStore
from modelinv.serve.querylog import QueryLog

QUICK_EXIT_S = 10.0  # a worker that exits sooner after its start counts towards giving up
MAX_QUICK_EXITS = 3


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_dir(db: Path) -> Path:
    """A fresh shared state directory beside `db` (`DB.workers-PID`, mode 0700); those left by servers that no longer run are removed."""
    db = Path(db).absolute()
    for old in db.parent.glob(f"{db.name}.workers-*"):
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = db.parent / f"{db.name}.workers-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    return path


def listen(host: str, port: int, count: int = 1) -> list[socket.socket]:
    """`count` listening TCP sockets on (host, port), one per worker, or a one-line error.

    On Linux they share the port with SO_REUSEPORT and the kernel spreads new connections over them evenly (by a
    hash of the client's address and port). One socket shared by all workers would not: an idle worker's event loop
    accepts every connection waiting at once, so 8 clients connecting together can all land on one worker, which
    then serves them as one process would. Elsewhere (or for one worker) one socket is returned, which all share.
    A port another process listens on is refused, with or without SO_REUSEPORT.
    Their protocol is IPPROTO_TCP, not 0, so that asyncio sets TCP_NODELAY on every connection: without it, Nagle's
    algorithm holds back small answers for the client's delayed acknowledgement (about 40 ms on Linux)."""
    spread = count > 1 and sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
    made: list[socket.socket] = []
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
        if spread:  # SO_REUSEPORT would join a port another process of this user listens on: check that it is free first
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                address = probe.getsockname()
        for _ in range(count if spread else 1):
            sock = socket.socket(family, kind, proto)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spread:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(made[0].getsockname() if made[1:] else address)
            sock.listen(2048)
    except OSError as err:
        for sock in made:
            sock.close()
        raise ModelinvError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return made


def worker_seed(seed: int, n: int) -> int:
    """The seed of worker `n` (counting replacements) of a server seeded with `seed`."""
    return int(np.random.SeedSequence([seed, n]).generate_state(1)[0])


def die_with(parent: int) -> None:
    """Have the kernel kill this process when `parent` dies (Linux), else watch it from a thread."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # died before the call
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="modelinv-parent-watch", daemon=True).start()


def exit_now(signum: int, frame) -> None:
    raise SystemExit(0)


def supervise(run_worker: Callable[[int, int], None], workers: int, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Fork `workers` processes, each running `run_worker(n, slot)` (n counts every worker started; slot, from 0 to
    workers - 1, is the place it fills), until SIGTERM or SIGINT, which are passed on to them; a worker that exits
    otherwise is replaced in its slot, unless workers keep exiting within QUICK_EXIT_S of their start. Returns the
    exit status: 0 after a stop, 1 after giving up."""
    parent, counter = os.getpid(), itertools.count()
    children: dict[int, tuple[int, int, float]] = {}
    stopping, quick_exits, status = False, 0, 0

    def stop(signum: int | None = None, frame=None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start(slot: int) -> None:
        n = next(counter)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, exit_now)  # uvicorn takes them over while it serves, then raises them again
                die_with(parent)
                run_worker(n, slot)
                code = 0
            except SystemExit as done:
                code = 0 if done.code in (None, 0) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children[pid] = (n, slot, time.monotonic())
        if stopping:
            os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(workers):
            start(slot)
        while children:
            pid, code = os.wait()
            if pid not in children:
                continue
            n, slot, since = children.pop(pid)
            if stopping:
                continue
            how = f"signal {-os.waitstatus_to_exitcode(code)}" if os.WIFSIGNALED(code) else f"status {os.waitstatus_to_exitcode(code)}"
            quick_exits = quick_exits + 1 if time.monotonic() - since < QUICK_EXIT_S else 0
            if quick_exits >= MAX_QUICK_EXITS:
                log(f"worker {n} (pid {pid}) exited with {how}; {quick_exits} workers exited within {QUICK_EXIT_S:g} s of their start: stopping")
                status = 1
                stop()
            else:
                log(f"worker {n} (pid {pid}) exited with {how}; starting another")
                start(slot)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def reopen(served: Served, shared: Path) -> Served:
    """`served` with database connections of its own (a forked worker must not use its parent's) that share `shared`."""
    log = served.log
    return replace(served, keys=KeyStore(log.path), log=QueryLog(log.path, log.stats, window=log.window, shared=shared), shared=shared)


def serve_workers(served: Served, host: str, port: int, workers: int, threads: int, seed: int) -> int:
    """Serve `served` on (host, port) from `workers` forked processes of `threads` prediction threads each,
    until SIGTERM or SIGINT; the exit status (see `supervise`)."""
    import uvicorn

    if not hasattr(os, "fork"):
        raise ModelinvError("--workers above 1 needs a POSIX system (os.fork); use --workers 1")

    sockets = listen(host, port, workers)
    shared = state_dir(served.log.path)
    served.keys.close()
    served.log.close()

    def run_worker(n: int, slot: int) -> None:
        seed_everything(worker_seed(seed, n))
        mine = reopen(served, shared)
        try:
            config = uvicorn.Config(create_app(mine, threads=threads), log_level="warning", access_log=False)
            uvicorn.Server(config).run(sockets=[sockets[slot % len(sockets)]])
        finally:
            mine.log.close()
            mine.keys.close()

    try:
        return supervise(run_worker, workers)
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(shared, ignore_errors=True)
