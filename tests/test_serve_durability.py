"""`modelinv serve` killed with SIGKILL under load: every input a client received an answer for is in the
query log, and no key is ever answered more inputs than its budget, across the kill and the restart.

The server runs as its own process on 127.0.0.1; clients are threads of this process sending batches of
distinct random inputs, each identified by the digest the log stores. The kill comes after a fixed number
of answered inputs (a count, not a time), 3 times over one database; each restart first exhausts the
previous key's budget. The load is bounded in requests per client. Run with one server process and with two
worker processes (`--workers 2`), whose kill -9 of the parent must take every worker down at once."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from modelinv.models import build_model
from modelinv.models.store import save_checkpoint
from modelinv.oracle.wire import encode_npy
from modelinv.serve.background import free_port
from modelinv.serve.db import connect
from modelinv.serve.keys import KeyStore

BUDGET, BATCH, CLIENTS, KILL_AFTER, MAX_REQUESTS = 480, 4, 4, 160, 200


def start(checkpoint, db, port, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "MODELINV_QUIET": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modelinv.cli", "serve", "--model", str(checkpoint), "--db", str(db), "--port", str(port),
               "--threads", "2" if workers == 1 else "1", "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(1200):  # up to 2 minutes of polling on a loaded machine; only readiness is awaited
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start")


def digest(row: np.ndarray) -> str:
    """The digest the query log stores for one input (float32 bytes, as modelinv.serve.querylog hashes them)."""
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest()[:32]


class Load:
    """`CLIENTS` threads sending batches of `BATCH` fresh random inputs under one key, recording what was answered."""

    def __init__(self, port: int, token: str, seed: int):
        self.url, self.token, self.seed = f"http://127.0.0.1:{port}/v1/predict", token, seed
        self.answered: list[str] = []
        self.statuses: list[int] = []
        self.lock, self.enough = threading.Lock(), threading.Event()

    def client(self, i: int, until: int | None) -> None:
        rng = np.random.default_rng([self.seed, i])
        with httpx.Client(trust_env=False, timeout=30) as http:
            for _ in range(MAX_REQUESTS):
                x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
                try:
                    response = http.post(self.url, json={"npy": encode_npy(x)}, headers={"Authorization": f"Bearer {self.token}"})
                except httpx.HTTPError:
                    return  # the server was killed
                with self.lock:
                    self.statuses.append(response.status_code)
                    if response.status_code == 200:
                        assert len(response.json()["npy"]) > 0
                        self.answered += [digest(row) for row in x]
                    if until is not None and len(self.answered) >= until:
                        self.enough.set()
                if response.status_code != 200:
                    return

    def run(self, until: int | None = None, kill: subprocess.Popen | None = None) -> None:
        """Run the clients; with `kill`, SIGKILL that server once `until` inputs have been answered."""
        threads = [threading.Thread(target=self.client, args=(i, until)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        if kill is not None:
            self.enough.wait(timeout=300)
            kill.send_signal(signal.SIGKILL)
            kill.wait(timeout=30)
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)


def workers_of(pid: int) -> set[int]:
    try:
        return {int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()}
    except FileNotFoundError:
        return set()


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped counts as exited)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def logged(db, key_id: str) -> list[str]:
    conn = connect(db, create=False)  # opened after the kill: reads what the WAL holds, as a restart would
    try:
        return [d for (d,) in conn.execute("SELECT digest FROM queries WHERE key_id = ?", (key_id,))]
    finally:
        conn.close()


@pytest.mark.slow  # four server starts: about a minute on 2 loaded cores, per setting
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"))])
def test_sigkill_under_load_loses_no_answered_input_and_overruns_no_budget(tmp_path, workers):
    checkpoint = save_checkpoint(tmp_path / "lenet", build_model("lenet", (1, 28, 28), 10), {})
    db = tmp_path / "serve.sqlite"
    store = KeyStore(db)
    keys = [store.create(f"load-{rep}", budget=BUDGET) for rep in range(3)]
    store.close()
    answered: dict[str, set[str]] = {key.id: set() for _, key in keys}
    for rep in range(4):
        port = free_port()
        server = start(checkpoint, db, port, workers)
        processes = workers_of(server.pid) if workers > 1 else set()
        assert len(processes) == (workers if workers > 1 else 0)
        try:
            if rep > 0:  # the restarted server: the previous key spends what is left of its budget, and not one input more
                token, key = keys[rep - 1]
                rest = Load(port, token, seed=100 + rep)
                rest.run()
                answered[key.id] |= set(rest.answered)
                assert rest.statuses[-1] == 429 and 429 in rest.statuses and set(rest.statuses) <= {200, 429}
                rows = logged(db, key.id)
                assert len(rows) == BUDGET, "the budget is spent exactly, counting inputs logged before the kill"
                assert len(answered[key.id]) <= BUDGET and answered[key.id] <= set(rows)
            if rep == 3:
                server.terminate()
                server.wait(timeout=30)
                break
            token, key = keys[rep]
            load = Load(port, token, seed=rep)
            load.run(until=KILL_AFTER, kill=server)
            assert server.returncode == -signal.SIGKILL
            deadline = time.monotonic() + 30
            while not all(gone(pid) for pid in processes) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert all(gone(pid) for pid in processes), "kill -9 of the server takes its workers down"
            answered[key.id] |= set(load.answered)
            rows = logged(db, key.id)
            assert len(answered[key.id]) >= KILL_AFTER, "the kill came under load"
            missing = answered[key.id] - set(rows)
            assert not missing, f"{len(missing)} answered inputs missing from the log after kill -9 (run {rep})"
            assert len(rows) <= BUDGET and len(rows) == len(set(rows))
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)
