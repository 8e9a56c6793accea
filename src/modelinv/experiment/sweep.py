"""The one runner: a grid of experiments, run in this process, on local processes or on a Ray cluster, into
a results store. Every command (`run`, `demo`, `tradeoff`, `audit`, `sweep`) and every benchmark is a grid
run by `run_grid`; what they print or render is read back from the store.

Each run is one task: the worker prepares its setting (models come from the cache once trained), runs
the attack, writes `out/runs/<run_id>/` and returns the result row; the parent alone writes the store,
one transaction per run as its result arrives. An interrupted sweep keeps every finished run, and
rerunning it computes only the rest. Runs that could train the same model (a target, an evaluator, an
attack's GAN) never run at the same time: the first trains and caches it, the others load it.
On a Ray cluster of several machines, the output directory and $MODELINV_CACHE must be shared paths.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from modelinv.attacks import ATTACKS
from modelinv.data.types import Splits
from modelinv.devices import resolve_device
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.grid import GridConfig, run_id
from modelinv.experiment.preflight import check_grid, data_key
from modelinv.experiment.runner import check_names, run_experiment, trained_before, write_run
from modelinv.experiment.text import is_text
from modelinv.metrics import METRICS
from modelinv.results import DATABASE, ResultsStore, defense_label
from modelinv.validation import check_output_dir

EXECUTORS = ("local", "ray")
# The config fields that determine each model a run may train and cache for the runs after it
# (the default evaluator's architecture follows the target's). The attack's models are those its
# `trained_models` names (the same name for every attack training the same model: a GAN family with its
# settings), each for the data and seed, and, when it learns from the target's answers, for the target,
# defense and access.
SHARED_MODELS = {
    "target": {"data": True, "target": True, "defense": True, "seed": True, "access": True},
    "evaluator": {"data": True, "target": {"arch"}, "evaluator": True, "seed": True},
}
ATTACK_MODELS = {"data": True, "attacker_data": True, "seed": True}
TARGET_DEPENDENT = {"target": True, "defense": True, "access": True}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or taskset's share), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without affinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def load() -> dict[str, float]:
    """The 1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return {}
    return {"1min": round(one, 2), "5min": round(five, 2), "15min": round(fifteen, 2)}


def run_one(cfg: ExperimentConfig, run_dir: str, threads: int, quiet: bool = True) -> dict[str, Any]:
    """The task a worker runs: one experiment with `threads` torch threads, its artifacts written to `run_dir`;
    returns the result row, which records the thread count (trained bits depend on it) and the machine it ran on:
    its available cores and the 1-minute load average at the run's start and end (a table rendered later from the
    store reports these, not the load at rendering)."""
    if quiet:
        os.environ["MODELINV_QUIET"] = "1"  # progress bars of parallel workers would garble each other
    torch.set_num_threads(threads)
    before = load().get("1min")
    row, images = run_experiment(cfg)
    row["machine"] = {"cores": available_cores(), "load_1min": [before, load().get("1min")]}
    write_run(Path(run_dir), cfg, row, images)
    return row


def describe(cfg: ExperimentConfig) -> str:
    """'attack rmle, defense none, seed 0, lenet on mnist5k': how errors and progress name a run."""
    d = cfg.defense
    defense = defense_label({"defense": d and d.name, "defense_params": d and d.params})
    return f"attack {cfg.attack.name}, defense {defense}, seed {cfg.seed}, {cfg.target.arch} on {cfg.data.source}"


def shared_models(cfg: ExperimentConfig) -> set[str]:
    """Keys of the models the run may train (target, evaluator, the attack's own: `Attack.trained_models`): runs sharing
    a key may train the same model."""
    def key(name: str, include: dict) -> str:
        return f"{name}:{json.dumps(cfg.model_dump(mode='json', include=include), sort_keys=True)}"

    keys = {key(name, include) for name, include in SHARED_MODELS.items()}
    attack = ATTACKS.get(cfg.attack.name)(**cfg.attack.params)
    for model, from_target in attack.trained_models().items():
        keys.add(key(f"attack:{model}", {**ATTACK_MODELS, **(TARGET_DEPENDENT if from_target else {})}))
    return keys


def _exit_with_parent(parent: int) -> None:
    """Worker initialiser: exit when the sweep process dies (killed), rather than linger as an orphan; and, once
    the pool has let the worker go (its results sent, multiprocessing's own exit work done), exit without the
    interpreter's teardown of torch and every module, which the sweep process waits for at its own exit (seconds)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    atexit.register(_exit_now)


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _ready() -> None:
    """A local worker's first task: nothing; unpickling it has imported this module, so torch and modelinv."""


class InlineExecutor:
    """Runs in this process, one at a time, with progress shown: `run`, `demo` and one-worker grids."""

    slots = 1

    def __init__(self, threads: int):
        self.threads = threads
        self.previous = torch.get_num_threads()

    def submit(self, cfg: ExperimentConfig, run_dir: Path):
        future: Future = Future()
        try:
            future.set_result(run_one(cfg, str(run_dir), self.threads, quiet=False))
        except ModelinvError as err:
            future.set_exception(err)
        return future

    def start(self) -> None:
        """Nothing to start: runs execute in this process."""

    def wait(self, handles: list) -> list:
        return handles[:1]

    def result(self, handle) -> dict[str, Any]:
        return handle.result()

    def close(self) -> None:
        torch.set_num_threads(self.previous)


class LocalExecutor:
    """A pool of `workers` spawned processes on this machine, each with `threads` torch threads."""

    def __init__(self, workers: int, threads: int):
        self.slots = workers
        self.threads = threads
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),))

    def start(self) -> None:
        """Start every worker now (each imports torch and modelinv, seconds) rather than at its first run."""
        for _ in range(self.slots):
            self.pool.submit(_ready)

    def submit(self, cfg: ExperimentConfig, run_dir: Path):
        return self.pool.submit(run_one, cfg, str(run_dir), self.threads)

    def wait(self, handles: list) -> list:
        return list(wait(handles, return_when=FIRST_COMPLETED).done)

    def result(self, handle) -> dict[str, Any]:
        return handle.result()

    def close(self) -> None:
        """No new runs; the idle workers exit on their own while the caller goes on (their interpreters' teardown
        took seconds of a short grid's wall time when waited for). Runs in flight were already awaited by `execute`."""
        self.pool.shutdown(wait=False, cancel_futures=True)


def ray_client_installed() -> bool:
    """Whether Ray Client (`ray://` addresses) can run here: it needs grpc, which `ray[client]` installs and plain `ray` does not."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


class RayExecutor:
    """Ray tasks of one CPU each: on the cluster at `address`, else on a local instance of `workers` CPUs."""

    def __init__(self, workers: int | None, address: str | None, threads: int | None):
        try:
            import ray
        except ImportError:
            raise ModelinvError("--executor ray needs Ray: pip install 'modelinv[ray]'") from None
        if address and address.startswith("ray://") and not ray_client_installed():
            raise ModelinvError(f"--address {address} (Ray Client) needs ray[client]: pip install 'modelinv[ray]'")
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            local = {} if address else {"num_cpus": workers or os.cpu_count(), "include_dashboard": False}
            try:
                ray.init(address=address, **local)
            except ValueError as err:  # Ray's own check of the client's packages, should ours miss one
                if "ray[client]" in str(err):
                    raise ModelinvError(f"--address {address} (Ray Client) needs ray[client]: pip install 'modelinv[ray]'") from None
                raise
        self.slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # On a local instance each task gets the local executor's share of this machine's cores, so that
        # both executors compute with the same number of threads and give the same bits.
        self.threads = threads or (1 if address else max(1, available_cores() // self.slots))
        self.task = ray.remote(num_cpus=1)(run_one)

    def start(self) -> None:
        """Ray starts its workers itself."""

    def submit(self, cfg: ExperimentConfig, run_dir: Path):
        return self.task.remote(cfg, str(run_dir), self.threads)

    def wait(self, handles: list) -> list:
        return self.ray.wait(handles, num_returns=1)[0]

    def result(self, handle) -> dict[str, Any]:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, ModelinvError):
                raise err.cause from None
            raise

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def cached_models(configs: list[ExperimentConfig], splits: dict[str, Splits], threads: int) -> set[str]:
    """The `shared_models` keys of the targets and evaluators already in the model cache (or given as weights) at
    `threads` torch threads, from the runs' `splits` (as `check_grid` returns them): runs sharing only these keys
    load the same model and may run at once."""
    ready: set[str] = set()
    for cfg in configs:
        if not is_text(cfg):
            roles = trained_before(cfg, splits[data_key(cfg)], threads)
            ready |= {key for key in shared_models(cfg) if key.split(":", 1)[0] in roles}
    return ready


def execute(executor, todo: dict[str, ExperimentConfig], runs_dir: Path, trained: set[str] | None = None) -> Iterator[tuple[str, ExperimentConfig, dict[str, Any]]]:
    """Yield (run_id, config, row) as runs finish, at most `executor.slots` at once, in grid order where
    possible but never two runs that may train the same model (`trained`: keys of models no run needs to train).
    After a run fails, nothing new starts; the runs in flight finish (and are yielded), then the failure is raised
    naming the run."""
    pending = dict(todo)
    needs = {rid: shared_models(cfg) for rid, cfg in todo.items()}  # once per run, not on every pass of the loop
    trained = set(trained or ())
    running: dict[Any, tuple[str, ExperimentConfig, set[str]]] = {}
    failure: ModelinvError | None = None
    while pending or running:
        busy = set().union(*(keys for _, _, keys in running.values()))
        for rid, cfg in list(pending.items()):
            keys = needs[rid] - trained
            if len(running) < executor.slots and not keys & busy:
                running[executor.submit(cfg, runs_dir / rid)] = (rid, cfg, keys)
                busy |= keys
                del pending[rid]
        for handle in executor.wait(list(running)):
            rid, cfg, keys = running.pop(handle)
            try:
                row = executor.result(handle)
            except ModelinvError as err:
                failure = failure or ModelinvError(f"run {rid} ({describe(cfg)}) failed: {err}")
                pending.clear()
                continue
            trained |= keys
            yield rid, cfg, row
    if failure is not None:
        raise failure


def run_grid(
    grid: GridConfig | list[ExperimentConfig],
    out: Path,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    command: str = "",
    log: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Any]]:
    """Run every experiment of `grid` not yet in `out`'s results store; return the grid's rows from the store, in grid order.

    `workers` runs at once (default: one per available core locally, or the cores divided by `threads` when
    that is given; the cluster's CPUs on Ray), each with `threads` torch threads (default: the available cores
    divided among the workers, so that runs never oversubscribe the machine). One local worker runs in this process. The thread count is part of every
    row: the same seed trains different bits at different thread counts.
    """
    if executor not in EXECUTORS:
        raise ModelinvError(f"unknown executor '{executor}' (known: {', '.join(EXECUTORS)})")
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ModelinvError(f"{name} must be at least 1, not {value}")
    configs = grid.experiments() if isinstance(grid, GridConfig) else list(grid)
    experiments = {run_id(cfg): cfg for cfg in configs}
    for cfg in experiments.values():  # unknown attacks, defenses, parameters or metrics fail before any work
        check_names(cfg)
    for device in sorted({cfg.device for cfg in experiments.values()}):  # so does a device this machine lacks
        resolve_device(device)
    out = check_output_dir(Path(out), "output directory (--out)").resolve()  # workers may run elsewhere, or on another machine of a Ray cluster
    done = previous_runs(out)
    todo = {rid: cfg for rid, cfg in experiments.items() if rid not in done}
    pool = make_executor(executor, address, workers, threads, len(todo)) if todo else None
    try:
        if pool is not None:
            pool.start()  # local workers start (importing torch and modelinv) while the checks below load the data
        # layers, access, the number of targets: checked for every run still to do before anything is written or trained
        splits = check_grid(list(todo.values()), describe=lambda cfg: f"run {run_id(cfg)} ({describe(cfg)})")
        store = ResultsStore(out)
        try:
            store.record_sweep(command, [cfg.model_dump(mode="json") for cfg in experiments.values()])
            log(f"{len(experiments)} runs: {len(experiments) - len(todo)} finished before, {len(todo)} to run")
            if pool is not None:
                ready = cached_models(list(todo.values()), splits, pool.threads) if pool.slots > 1 else set()
                for count, (rid, cfg, row) in enumerate(execute(pool, todo, out / "runs", ready), start=1):
                    store.record(rid, cfg.model_dump(mode="json"), row, out / "runs" / rid)
                    log(f"  [{count}/{len(todo)}] {describe(cfg)}: done (attack {row['seconds']:.1f} s)")
            rows = {row["run_id"]: row for row in store.rows()}
            return [rows[rid] for rid in experiments]
        finally:
            store.close()
    finally:
        if pool is not None:
            pool.close()


def previous_runs(out: Path) -> set[str]:
    """The run_ids finished in `out`'s results store, read without creating anything."""
    if not (out / DATABASE).is_file():
        return set()
    store = ResultsStore(out, create=False)
    try:
        return store.done()
    finally:
        store.close()


def make_executor(executor: str, address: str | None, workers: int | None, threads: int | None, runs: int):
    """The executor for `runs` runs: in this process for one local worker, else a process pool or Ray."""
    if executor == "ray":
        return RayExecutor(workers, address, threads)
    cores = available_cores()
    workers = min(runs, workers or (max(1, cores // threads) if threads else cores))  # never more threads than cores unless asked
    threads = threads or max(1, cores // workers)
    return InlineExecutor(threads) if workers == 1 else LocalExecutor(workers, threads)


def table(rows: list[dict[str, Any]], metrics: list[str] | None = None, ids: bool = False) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Columns and rows to print: (run_id,) attack, defense, seed, target accuracy and each metric the rows have;
    data and model too where they vary."""
    names = metrics or [m for m in METRICS.names() if any(m in row for row in rows)]
    varying = tuple(c for c in ("data", "model") if len({row[c] for row in rows}) > 1)
    columns = (("run_id",) if ids else ()) + varying + ("attack", "defense", "seed", "target acc", *names)
    return columns, [{**row, "defense": defense_label(row), "target acc": row["target_test_acc"]} for row in rows]
