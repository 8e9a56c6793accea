"""Sweeps: grid expansion, parallel runs into the results store, resuming after a kill, Ray, and `modelinv results`."""

import contextlib
import csv
import io
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import assert_one_line_error, cli, invoke
from modelinv.experiment.grid import GridConfig, run_id
from modelinv.experiment.preflight import check_grid
from modelinv.experiment.sweep import cached_models, shared_models
from modelinv.report.leaderboard import leaderboard
from modelinv.results import ResultsStore
from modelinv.validation import validate

SCENARIO = {
    "data": {"source": "mnist5k"},
    "target": {"arch": "lenet", "train": {"epochs": 1}},
    "evaluator": {"arch": "eval-cnn", "train": {"epochs": 1}},
    "access": {"observe": "features", "layer": "conv1", "white_box": "client"},
    "num_targets": 8,
    "metrics": ["mse", "psnr", "ssim", "attack_acc_top1"],
}
GRID = {
    **SCENARIO,
    "attacks": [{"name": "rmle", "params": {"iterations": 20}}, {"name": "inverse-net", "params": {"epochs": 1}}],
    "defenses": [None, {"name": "laplace-noise", "params": {"scale": 0.5}}],
    "seeds": [0, 1],
}


def write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def runs(directory: Path) -> dict[str, tuple[float, dict[str, float]]]:
    """run_id -> (finished, {metric: value}), read straight from the database."""
    db = sqlite3.connect(directory / "results.sqlite", timeout=30)
    try:
        metrics: dict[str, dict[str, float]] = {}
        for rid, name, value in db.execute("SELECT run_id, name, value FROM metrics"):
            metrics.setdefault(rid, {})[name] = value
        return {rid: (finished, metrics[rid]) for rid, finished in db.execute("SELECT run_id, finished FROM runs")}
    finally:
        db.close()


def outcomes(directory: Path) -> dict[str, dict[str, float]]:
    """Every run's metrics but its wall-clock time."""
    return {rid: {k: v for k, v in m.items() if k != "seconds"} for rid, (_, m) in runs(directory).items()}


def command(*args) -> list[str]:
    return [sys.executable, "-m", "modelinv.cli", *map(str, args)]


def live_members(group: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == group and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def test_grid_expansion():
    grid = validate(GridConfig, GRID)
    experiments = grid.experiments()
    assert len(experiments) == 2 * 2 * 2
    assert sum(e.defense is None for e in experiments) == 4
    ids = [run_id(e) for e in experiments]
    assert len(set(ids)) == 8 and ids == [run_id(e) for e in validate(GridConfig, GRID).experiments()]
    undefended, defended = experiments[0], experiments[4]  # rmle, seed 0
    assert (undefended.defense, defended.defense.name, undefended.seed, defended.seed) == (None, "laplace-noise", 0, 0)
    shared = shared_models(undefended) & shared_models(defended)  # the evaluator and the attack's own, not the target
    assert len(shared) == 2 and all(k.startswith(("evaluator:", "attack:")) for k in shared)
    single = validate(GridConfig, {**SCENARIO, "attacks": [{"name": "rmle"}]}).experiments()
    assert len(single) == 1 and single[0].defense is None and single[0].seed == 0


def attack_keys(attack: str, params: dict | None = None, **changes) -> set[str]:
    """The keys of the models a run of `attack` may train, beyond its target and evaluator."""
    raw = {**SCENARIO, "attacks": [{"name": attack, "params": params or {}}], **changes}
    (cfg,) = validate(GridConfig, raw).experiments()
    return {k for k in shared_models(cfg) if k.startswith("attack:")}


def test_runs_whose_attack_models_differ_may_run_at_once():
    """A decoder learns from the target's answers: inverse-nets at two cuts train two decoders and may run together
    (the demo's two LeNet runs did not); GMI's GAN learns from public data alone: two targets would train the same one."""
    conv1 = attack_keys("inverse-net", access={"observe": "features", "layer": "conv1"})
    assert conv1 != attack_keys("inverse-net", access={"observe": "features", "layer": "relu2"})
    assert attack_keys("gmi", access={"white_box": "full"}, target={"arch": "lenet"}) == attack_keys("gmi", access={"white_box": "full"}, target={"arch": "mlp"})


def test_attacks_training_the_same_model_never_run_at_once():
    """Models are named by what they are, not by the attack that trains them: GMI, Mirror, RLB-MI and BREP-MI train one
    WGAN-GP; GMI with `gan: kedmi` trains KEDMI's GAN (which learns from the target, so one per target); GMI, KEDMI
    and PLG-MI with LOMMA distil the same surrogates. Runs sharing such a key wait for each other."""
    white, probs = {"access": {"white_box": "full"}}, {"access": {"observe": "probs"}}
    (wgan,) = attack_keys("gmi", **white)
    assert {wgan} == attack_keys("mirror-bb", **probs) == attack_keys("rlb-mi", **probs) == attack_keys("brep-mi", access={"observe": "label"})
    assert attack_keys("gmi", {"gan_steps": 10}, **white) != {wgan}  # other settings, another GAN
    (kedmi,) = attack_keys("kedmi", **white)
    assert attack_keys("gmi", {"gan": "kedmi"}, **white) == {kedmi} != attack_keys("kedmi", target={"arch": "mlp"}, **white)
    surrogates = attack_keys("gmi", {"lomma": True}, **white) - {wgan}
    assert len(surrogates) == 3 and surrogates < attack_keys("kedmi", {"lomma": True}, **white) and surrogates < attack_keys("plg-mi", {"lomma": True}, **white)
    assert not surrogates & attack_keys("gmi", {"lomma": True}, target={"arch": "mlp"}, **white)  # learnt from the target


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 2 attacks x 2 defenses x 2 seeds grid on mnist5k, swept on local processes: (directory, config, output).
    Its models come from the session's cache (tests/test_report.py trains the same ones)."""
    out = tmp_path_factory.mktemp("sweep")
    config = write(out.parent / f"{out.name}.yaml", GRID)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert invoke("sweep", config, "--out", out, "--executor", "local", "--workers", 2) == 0
    return out, config, printed.getvalue()


def test_models_a_sweep_trained_let_later_runs_share_them_at_once(swept):
    """Once cached (at the thread count they were trained at), a target and a judge no longer keep the runs that
    load them from running together; models never trained (another seed) still do, and so does another thread count."""
    out, _, _ = swept
    store = ResultsStore(out, create=False)
    threads = {row["threads"] for row in store.rows()}
    store.close()
    assert len(threads) == 1
    (threads,) = threads
    experiments = validate(GridConfig, GRID).experiments()
    ready = cached_models(experiments, check_grid(experiments), threads)
    for cfg in experiments:
        keys = {k.split(":", 1)[0] for k in shared_models(cfg) & ready}
        assert keys == {"target", "evaluator"}, cfg
    fresh = [cfg.model_copy(update={"seed": 7}) for cfg in experiments[:1]]
    assert cached_models(fresh, check_grid(fresh), threads) == set()
    assert cached_models(experiments[:1], check_grid(experiments[:1]), threads + 1) == set()


def test_local_sweep_then_rerun_computes_nothing(swept, capsys):
    out, config, printed = swept
    assert "8 runs: 0 finished before, 8 to run" in printed
    first = runs(out)
    assert len(first) == 8
    for rid, (_, metrics) in first.items():
        assert {"mse", "psnr", "ssim", "attack_acc_top1", "target_test_acc"} <= set(metrics)
        assert json.loads((out / "runs" / rid / "results.json").read_text())["psnr"] == metrics["psnr"]
        assert (out / "runs" / rid / "reconstructions.png").stat().st_size > 0
        machine = json.loads((out / "runs" / rid / "results.json").read_text())["machine"]  # where it ran, for tables rendered later
        assert machine["cores"] >= 1 and len(machine["load_1min"]) == 2
    code, stdout, err = cli(capsys, "sweep", config, "--out", out)
    assert code == 0, err
    assert "8 runs: 8 finished before, 0 to run" in stdout
    assert runs(out) == first  # same finish times: nothing recomputed
    store = ResultsStore(out)
    assert [s["command"].split()[:2] for s in store.sweeps()] == [["modelinv", "sweep"]] * 2
    assert len(store.sweeps()[0]["config"]) == 8 and {c["seed"] for c in store.sweeps()[0]["config"]} == {0, 1}  # one config per run
    store.close()


def test_results_formats_and_filters(swept, capsys):
    out = swept[0]
    code, stdout, err = cli(capsys, "results", out, "--metric", "psnr")
    assert code == 0, err
    assert stdout.count("inverse-net") == 4 and stdout.count("laplace-noise(scale=0.5, train=True)") == 4
    assert all(rid in stdout for rid in runs(out)) and "psnr" in stdout and "ssim" not in stdout
    code, stdout, _ = cli(capsys, "results", out, "--format", "json", "--where", "attack=rmle", "--where", "defense=none")
    rows = json.loads(stdout)
    assert code == 0 and sorted(r["seed"] for r in rows) == [0, 1]
    assert all(r["attack"] == "rmle" and r["defense"] is None and "psnr" in r for r in rows)
    code, stdout, _ = cli(capsys, "results", out, "--format", "csv", "--where", "seed=1", "--where", "defense=laplace-noise")
    records = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and len(records) == 2 and {r["attack"] for r in records} == {"rmle", "inverse-net"}
    assert all(r["seed"] == "1" and json.loads(r["defense_params"])["scale"] == 0.5 for r in records)
    assert {r["run_id"] for r in records} <= set(runs(out))
    code, _, err = cli(capsys, "results", out, "--where", "atack=rmle")
    assert_one_line_error(code, err, "unknown field 'atack'", "attack", "seed")
    code, _, err = cli(capsys, "results", out, "--where", "attack")
    assert_one_line_error(code, err, "FIELD=VALUE")
    code, _, err = cli(capsys, "results", out.parent / "nowhere")
    assert_one_line_error(code, err, "no results in")


def test_leaderboard_ranks_by_each_metrics_direction(swept, capsys):
    code, stdout, err = cli(capsys, "results", swept[0], "--leaderboard", "--format", "json", "--metric", "psnr", "--metric", "mse")
    assert code == 0, err
    entries = json.loads(stdout)
    assert {e["metric"] for e in entries} == {"psnr", "mse"} and len(entries) == 2 * 2 * 2  # scopes x metrics x attacks
    for scope in {e["scope"] for e in entries}:
        psnr = [e for e in entries if e["scope"] == scope and e["metric"] == "psnr"]
        mse = [e for e in entries if e["scope"] == scope and e["metric"] == "mse"]
        # two seeds: attacks whose 95% intervals overlap share a rank; the better mean is listed first
        assert psnr[0]["rank"] == 1 and psnr[1]["rank"] in (1, 2) and psnr[0]["mean"] >= psnr[1]["mean"]
        assert mse[0]["mean"] <= mse[1]["mean"] and all(e["seeds"] == 2 for e in psnr + mse)
    code, stdout, _ = cli(capsys, "results", swept[0], "--leaderboard", "--metric", "psnr")
    assert code == 0 and "mean [95% interval]" in stdout and "mnist5k/lenet: none" in stdout
    code, _, err = cli(capsys, "results", swept[0], "--leaderboard", "--metric", "psnrr")
    assert_one_line_error(code, err, "unknown metric 'psnrr'")


def test_leaderboard_pools_seeds():
    base = {"data": "mnist5k", "model": "lenet", "defense": None, "target_test_acc": 0.9}
    rows = [
        {**base, "attack": "weak", "psnr": 10.0, "mse": 0.2},
        {**base, "attack": "weak", "psnr": 12.0, "mse": 0.1},
        {**base, "attack": "strong", "psnr": 30.0, "mse": 0.01},
        {**base, "attack": "strong", "psnr": 30.0, "mse": 0.03},
    ]
    board = {(e.metric, e.attack): e for e in leaderboard(rows)}
    # psnr: [-1.7, 23.7] against [30, 30], separated; mse: the 2-seed intervals overlap, so both rank 1
    assert (board["psnr", "strong"].rank, board["psnr", "weak"].rank) == (1, 2)
    assert (board["psnr", "weak"].mean, round(board["psnr", "weak"].std, 6), board["psnr", "weak"].seeds) == (11.0, round(2**0.5, 6), 2)
    assert board["psnr", "weak"].low < 11.0 < board["psnr", "weak"].high
    assert (board["mse", "strong"].rank, board["mse", "weak"].rank) == (1, 1) and board["psnr", "strong"].scope == "mnist5k/lenet: none"
    assert [e.attack for e in leaderboard(rows) if e.metric == "mse"] == ["strong", "weak"]


def test_failing_run_stops_the_sweep_with_one_line(tmp_path, capsys):
    bad = {**SCENARIO, "access": {**SCENARIO["access"], "layer": "conv9"}}
    config = write(tmp_path / "bad.yaml", {**bad, "attacks": [{"name": "rmle"}], "defenses": [{"name": "laplace-noise"}]})
    code, _, err = cli(capsys, "sweep", config, "--out", tmp_path / "out", "--workers", "1")
    assert_one_line_error(code, err, "attack rmle, defense laplace-noise", "seed 0", "no layer 'conv9'")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    code, _, err = cli(capsys, "sweep", write(tmp_path / "typo.yaml", {**GRID, "attacks": [{"name": "rmlee"}]}), "--out", tmp_path / "o")
    assert_one_line_error(code, err, "unknown attack 'rmlee'")
    code, _, err = cli(capsys, "sweep", config, "--out", tmp_path / "o", "--executor", "spark")
    assert_one_line_error(code, err, "unknown executor 'spark'")


def lines_of(proc: subprocess.Popen) -> "queue.Queue[str | None]":
    """The lines `proc` prints, as they come (None at the end), read by a thread that drains its pipe to the end."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: "queue.Queue[str | None]", prefix: str, timeout: float) -> list[str]:
    """Every line up to the first that starts with `prefix` (leading spaces aside); fails on end of output or after `timeout` s."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line starting {prefix!r} within {timeout} s; output so far:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"the process ended before printing {prefix!r}:\n{''.join(seen)}")
        seen.append(line)
        if line.lstrip().startswith(prefix):
            return seen


@pytest.mark.slow
def test_killed_sweep_resumes_without_recomputing(tmp_path, capsys):
    """SIGTERM on the sweep process as soon as it logs its first finished run (the store holds a run before its
    line is logged): the 2 workers must exit with it, and the rerun computes only the runs the store lacks.

    The two rmle runs (seeds 0 and 1) start together; each inverse-net run waits for its seed's rmle run (they share
    models) and takes seconds, so the signal lands with 1 or 2 of the 4 runs stored, never 4 (the sweep would have
    exited 0, which the test reports as such)."""
    grid = {**SCENARIO, "attacks": [{"name": "rmle", "params": {"iterations": 20}}, {"name": "inverse-net", "params": {"epochs": 2}}]}
    config, out = write(tmp_path / "grid.yaml", {**grid, "seeds": [0, 1]}), tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(command("sweep", config, "--out", out, "--workers", 2), env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = lines_of(proc)
        printed = wait_for_line(lines, "[1/4]", timeout=300)
        proc.send_signal(signal.SIGTERM)  # the sweep process only: its workers must notice and exit
        assert proc.wait(timeout=30) != 0, "the sweep finished before the signal:\n" + "".join(printed)
        deadline = time.monotonic() + 30  # workers check for their parent every 0.5 s
        while live_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not live_members(proc.pid), "workers outlived the killed sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = runs(out)
    assert 1 <= len(before) < 4, "".join(printed)
    code, stdout, err = cli(capsys, "sweep", config, "--out", out)
    assert code == 0, err
    assert f"4 runs: {len(before)} finished before, {4 - len(before)} to run" in stdout
    after = runs(out)
    assert len(after) == 4 and all(after[rid] == before[rid] for rid in before)


@pytest.mark.slow
def test_ray_sweep_gives_the_local_rows(swept, tmp_path):
    """Ray's workers load the local sweep's models from the session cache, and compute every run to the same bits."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'modelinv[ray]')")
    out, config, _ = swept
    proc = subprocess.run(command("sweep", config, "--out", tmp_path / "ray", "--executor", "ray", "--workers", "2"), capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr
    assert "8 runs: 0 finished before, 8 to run" in proc.stdout
    assert outcomes(tmp_path / "ray") == outcomes(out)  # seeded runs: the same numbers, to the bit


def test_default_workers_and_threads_never_oversubscribe_the_cores(monkeypatch):
    """One run per core with one thread each by default; --threads alone gives the cores divided by it as workers."""
    from modelinv.experiment import sweep

    monkeypatch.setattr(sweep, "available_cores", lambda: 4)
    made = []
    monkeypatch.setattr(sweep, "LocalExecutor", lambda workers, threads: made.append((workers, threads)) or "pool")
    monkeypatch.setattr(sweep, "InlineExecutor", lambda threads: made.append((1, threads)) or "inline")
    for workers, threads in [(None, None), (None, 2), (None, 4), (2, None), (3, 3), (None, None)]:
        sweep.make_executor("local", None, workers, threads, runs=5)
    assert made == [(4, 1), (2, 2), (1, 4), (2, 2), (3, 3), (4, 1)]
    sweep.make_executor("local", None, None, None, runs=1)  # one run: in this process, with every core
    assert made[-1] == (1, 4)
