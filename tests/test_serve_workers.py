"""`modelinv serve --workers N`: what one process guarantees holds across the worker processes.

The shared pieces are tested deterministically in one process (two query logs or two limiters opened on the same
files behave as two workers: their locks are `flock`s on separate open files): the perturbation detector's window,
the budget and the rate limit. Then a real server of 2 workers on 127.0.0.1, each request on a fresh connection so
that both workers answer: rate limit, budget, revocation and the shared window, a worker killed and replaced, the
shared state removed at the stop. Every count asserted is exact; nothing depends on the machine's speed."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch

from modelinv.models import build_model
from modelinv.models.store import save_checkpoint
from modelinv.oracle.wire import encode_npy
from modelinv.serve.background import free_port
from modelinv.serve.db import connect
from modelinv.serve.keys import ApiKey, KeyStore
from modelinv.serve.limits import Limiter, SharedLimiter
from modelinv.serve.querylog import QueryLog
from modelinv.serve.workers import state_dir, worker_seed


def reference_nearest(batches: list[np.ndarray], window: int) -> np.ndarray:
    """The RMS distance of each input to the closest of the key's `window` inputs before its batch and the inputs of
    its batch before it, repeats (below 1e-3) skipped; NaN when there is none. Computed from scratch, in float64."""
    out, history = [], np.zeros((0, batches[0].shape[1]))
    for batch in batches:
        earlier = history[-window:]
        for i, row in enumerate(batch.astype(np.float64)):
            pool = np.concatenate([earlier, batch[:i]])
            dist = np.sqrt(((pool - row) ** 2).mean(1))
            dist = dist[dist >= 1e-3]
            out.append(dist.min() if len(dist) else np.nan)
        history = np.concatenate([history, batch])
    return np.array(out)


def traffic(seed: int, sizes: list[int], dim: int = 12) -> list[np.ndarray]:
    """Batches of inputs, some of them perturbations of earlier ones and some exact repeats."""
    rng = np.random.default_rng(seed)
    batches, sent = [], []
    for n in sizes:
        batch = rng.random((n, dim), dtype=np.float32)
        for i in range(n):
            if sent and rng.random() < 0.4:
                batch[i] = sent[rng.integers(len(sent))] + rng.normal(0, 0.02, dim).astype(np.float32)
            elif sent and rng.random() < 0.2:
                batch[i] = sent[rng.integers(len(sent))]  # a retry
            sent.append(batch[i])
        batches.append(batch)
    return batches


def logged_nearest(db, key_id: str) -> np.ndarray:
    conn = connect(db, create=False)
    try:
        return np.array([np.nan if d is None else d for (d,) in conn.execute("SELECT nearest FROM queries WHERE key_id = ? ORDER BY rowid", (key_id,))])
    finally:
        conn.close()


def record(log: QueryLog, key_id: str, batch: np.ndarray, budget: int | None = None) -> bool:
    x = torch.from_numpy(batch).reshape(len(batch), 1, 1, -1)
    return log.record(key_id, x, torch.zeros(len(batch), 3), torch.zeros(len(batch), 4), budget=budget)


SIZES = [1, 1, 3, 1, 7, 2, 1, 1, 9, 1, 4, 1, 1, 2, 1, 6, 1]  # batches below, at and above the window of 5


def test_one_log_measures_against_the_last_window_inputs(tmp_path):
    batches = traffic(0, SIZES)
    log = QueryLog(tmp_path / "one.sqlite", window=5)
    for batch in batches:
        assert record(log, "k", batch)
    log.close()
    expected = reference_nearest(batches, window=5)
    got = logged_nearest(tmp_path / "one.sqlite", "k")
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-3, atol=1e-5)


def test_workers_share_the_window_in_commit_order(tmp_path):
    """Three logs on one database and one state directory (three workers), taking the batches of two keys in an
    arbitrary order: every input is measured against the same last inputs as one process would measure it."""
    shared = state_dir(tmp_path / "w.sqlite")
    logs = [QueryLog(tmp_path / "w.sqlite", window=5, shared=shared) for _ in range(3)]
    rng = np.random.default_rng(1)
    streams = {"a": traffic(2, SIZES), "b": traffic(3, SIZES[::-1])}
    for i in range(len(SIZES)):
        for key in rng.permutation(["a", "b"]):
            assert record(logs[rng.integers(3)], key, streams[key][i])
    for key, batches in streams.items():
        expected = reference_nearest(batches, window=5)
        got = logged_nearest(tmp_path / "w.sqlite", key)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), key
        assert np.allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-3, atol=1e-5), key
    held = dict(logs[0].db.execute("SELECT key_id, COUNT(*) FROM live.recent GROUP BY key_id").fetchall())
    assert all(n <= 2 * 5 + 9 for n in held.values()), f"the shared window is pruned: {held}"
    for log in logs:
        log.close()


def test_a_budget_holds_across_workers_racing(tmp_path):
    """Two logs (two workers) answering one key from 8 threads: exactly the budget is logged, never more."""
    shared = state_dir(tmp_path / "b.sqlite")
    logs = [QueryLog(tmp_path / "b.sqlite", shared=shared) for _ in range(2)]
    batches = traffic(4, [3] * 60)

    def send(i: int) -> int:
        return 3 * record(logs[i % 2], "k", batches[i], budget=100)

    with ThreadPoolExecutor(8) as pool:
        answered = sum(pool.map(send, range(60)))
    assert answered == 99 and logs[0].used("k") == logs[1].used("k") == 99  # 33 batches of 3; a 34th would overrun
    assert not record(logs[1], "k", batches[0][:2], budget=100) and record(logs[0], "k", batches[0][:1], budget=100)
    assert logs[1].used("k") == 100
    for log in logs:
        log.close()


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_shared_rate_limit_is_one_bucket_for_all_workers(tmp_path):
    clock = FakeClock()
    shared = state_dir(tmp_path / "r.sqlite")
    a, b = SharedLimiter(shared / "limits.sqlite", clock), SharedLimiter(shared / "limits.sqlite", clock)
    key = ApiKey(id="k", name="k", admin=False, rate=2.0, burst=3, budget=None, created=0.0, revoked=None)
    assert [a.take_request(key), b.take_request(key), a.take_request(key), b.take_request(key)] == [True, True, True, False]
    assert a.retry_after(key) == b.retry_after(key) == 0.5
    clock.now += 0.5
    assert b.take_request(key) and not a.take_request(key)
    clock.now += 100.0  # refills up to the burst, no further
    assert [limiter.take_request(key) for limiter in (a, b, a, b)] == [True, True, True, False]
    alone = Limiter(clock)  # one process's limiter: the same bucket arithmetic
    assert [alone.take_request(key) for _ in range(4)] == [True, True, True, False] and alone.retry_after(key) == 0.5
    a.close()
    b.close()


def test_state_directories_of_stopped_servers_are_removed(tmp_path):
    db = tmp_path / "s.sqlite"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f"s.sqlite.workers-{dead}").mkdir()
    (tmp_path / f"s.sqlite.workers-{os.getppid()}").mkdir()  # a live process's: kept
    made = state_dir(db)
    assert made == tmp_path / f"s.sqlite.workers-{os.getpid()}" and made.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([made.name, f"s.sqlite.workers-{os.getppid()}"])
    assert len({worker_seed(0, n) for n in range(8)} | {worker_seed(1, 0)}) == 9


# ---------------------------------------------------------------------------------------------- a real server


def children(pid: int) -> set[int]:
    try:
        return {int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()}
    except FileNotFoundError:
        return set()


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start(checkpoint, db, port, workers: int) -> subprocess.Popen:
    env = {**os.environ, "MODELINV_QUIET": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modelinv.cli", "serve", "--model", str(checkpoint), "--db", str(db), "--port", str(port),
               "--workers", str(workers), "--threads", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, "the server to start")
    return proc


def post(port: int, token: str, x: np.ndarray) -> int:
    """One request on a fresh connection (the kernel hands each new connection to one of the workers)."""
    with httpx.Client(trust_env=False, timeout=60) as client:
        return client.post(f"http://127.0.0.1:{port}/v1/predict", json={"npy": encode_npy(x)}, headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the worker processes")
@pytest.mark.slow  # two server starts
def test_two_workers_keep_every_guarantee(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "lenet", build_model("lenet", (1, 28, 28), 10), {})
    db = tmp_path / "serve.sqlite"
    store = KeyStore(db)
    (limited, _), (budgeted, budget_key), (revoked, revoked_key), (prober, prober_key) = (
        store.create("limited", rate=0.001, burst=4), store.create("budgeted", budget=10), store.create("revoked"), store.create("prober"))
    port = free_port()
    server = start(checkpoint, db, port, workers=2)
    try:
        workers = children(server.pid)
        assert len(workers) == 2 and (tmp_path / f"serve.sqlite.workers-{server.pid}").is_dir()
        rng = np.random.default_rng(0)
        image = rng.random((1, 1, 28, 28), dtype=np.float32)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: post(port, limited, image), range(16)))
            assert sorted(statuses) == [200] * 4 + [429] * 12, "the burst of 4 across both workers together"
            statuses = list(pool.map(lambda i: post(port, budgeted, rng.random((1, 1, 28, 28), dtype=np.float32)), range(16)))
            assert sorted(statuses) == [200] * 10 + [429] * 6
        conn = connect(db, create=False)
        count = lambda key: conn.execute("SELECT COUNT(*) FROM queries WHERE key_id = ?", (key.id,)).fetchone()[0]  # noqa: E731
        assert count(budget_key) == 10

        assert post(port, revoked, image) == 200
        KeyStore(db).revoke(revoked_key.id)
        assert [post(port, revoked, image) for _ in range(12)] == [401] * 12

        probes = np.clip(image + rng.normal(0, 0.01, (12, 1, 28, 28)), 0, 1).astype(np.float32)
        assert [post(port, prober, probes[i : i + 1]) for i in range(12)] == [200] * 12
        nearest = [d for (d,) in conn.execute("SELECT nearest FROM queries WHERE key_id = ? ORDER BY rowid", (prober_key.id,))]
        assert nearest[0] is None and all(d is not None and d < 0.03 for d in nearest[1:]), "each probe measured against the earlier ones, whichever worker had them"

        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(server.pid) - {victim}) == 2, "a replacement worker")
        assert all(post(port, prober, image) == 200 for _ in range(6))
        conn.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0, server.stderr.read().decode()[-2000:]
    assert not (tmp_path / f"serve.sqlite.workers-{server.pid}").exists(), "the shared state is removed at the stop"


def test_workers_option_is_checked_before_anything(tmp_path, capsys):
    from helpers import assert_one_line_error, cli

    code, _, err = cli(capsys, "serve", "--model", tmp_path / "missing", "--db", tmp_path / "w.sqlite", "--workers", "0")
    assert_one_line_error(code, err, "invalid '--workers': must be at least 1, not 0")
    assert not (tmp_path / "w.sqlite").exists()


def test_a_taken_port_is_a_one_line_error(tmp_path):
    from modelinv.errors import ModelinvError
    from modelinv.serve.workers import listen

    sockets = listen("127.0.0.1", 0, 2)
    try:
        port = sockets[0].getsockname()[1]
        assert all(s.getsockname()[1] == port for s in sockets) and len(sockets) == (2 if sys.platform.startswith("linux") else 1)
        for count in (1, 2):
            with pytest.raises(ModelinvError, match=rf"cannot listen on 127.0.0.1:{port}: "):
                listen("127.0.0.1", port, count)
    finally:
        for sock in sockets:
            sock.close()

