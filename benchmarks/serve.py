"""`modelinv serve` under load, attacked over HTTP through the one runner, and its query monitor, on loopback:

    python benchmarks/serve.py            # seeds 0-2, 3 repetitions of 8 s per load level: about 10 min on 2 cores
    python benchmarks/serve.py --quick    # seed 0, 3 repetitions of 2 s, fewer keys: checks that it runs
    python benchmarks/serve.py --render   # rewrite the Markdown from the stored runs and load measurements

For each seed, the LeNet target of that seed (mnist5k, trained and cached by the runner) is served by
`modelinv serve` in its own process (`--expose probs --reference mnist5k`, `--threads` prediction threads,
one torch thread each), on a fixed loopback port so that the configs, and so the results store, are the
same from one invocation to the next.

- Attacks: `inverse-net` over HTTP, as runner experiments whose `access.endpoint` is the served model (the
  oracle is modelinv.oracle.RemoteOracle), on the attacker's public images and on uniform noise (He et al.
  2019, Table 4), each with its own API key; beside each, the same experiment on the in-process oracle.
  Rows go to `benchmarks/results/serve/results.sqlite` through modelinv.report.benchmark.run.
- Load (seed 0's server): 1, 8 and 32 concurrent clients (threads with keep-alive connections, in this
  process) each send one held-out test image per request for `--seconds`, then one client sends batches
  of 64; `--repeats` repetitions, levels interleaved within each, so a change in machine load spreads over
  all levels. Throughput and p99 latency: median and range over the repetitions; the 1-minute load
  average before each measurement is recorded. Target (issue 18): throughput at 8 clients at least 1.5x
  that at 1 client, on 2 cores.
- Monitor: `--benign` keys each send `--benign-queries` held-out test images in random order, one per
  request; then every attack key and every benign key is checked with the default detector thresholds
  (modelinv.serve.detectors): detection rate over attack keys, false-positive rate over benign keys.

All traffic goes to 127.0.0.1 and is bounded in time and count. The serving database (keys, query log)
is `serve.sqlite` in the results directory; the load measurements are `load.json` there.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.grid import run_id
from modelinv.experiment.runner import prepare
from modelinv.experiment.sweep import available_cores
from modelinv.models.store import load_checkpoint
from modelinv.oracle.wire import encode_npy
from modelinv.report import benchmark
from modelinv.report.aggregate import metric_interval
from modelinv.report.markdown import table
from modelinv.serve.detectors import DETECTORS, scan
from modelinv.serve.keys import KeyStore
from modelinv.serve.ood import FeatureStats
from modelinv.validation import validate

LEVELS = (1, 8, 32)
TARGET_SCALING = 1.5  # issue 18: throughput at 8 clients >= 1.5x that at 1 client on 2 cores
SINGLE_THREADS = 2  # the one-process server measured beside the workers: `modelinv serve --threads 2`, as before --workers existed
ATTACKER_DATA = ("public", "uniform-noise")
KEY_ENV = "MODELINV_SERVE_KEY_{data}_{seed}"


def config(seed: int, attacker_data: str, port: int | None, epochs: int, quick: bool) -> ExperimentConfig:
    """inverse-net against the seed's LeNet, over HTTP when `port` is given, else on the in-process oracle."""
    access: dict = {"observe": "probs"}
    if port is not None:
        access |= {"endpoint": f"http://127.0.0.1:{port}", "key_env": KEY_ENV.format(data=attacker_data.replace("-", "_").upper(), seed=seed)}
    return validate(
        ExperimentConfig,
        {
            "seed": seed,
            "data": {"source": "mnist5k"},
            "target": {"arch": "lenet", "train": {"epochs": epochs}},
            "access": access,
            "attack": {"name": "inverse-net", "params": {"epochs": 1 if quick else 5}},
            "attacker_data": attacker_data,
            "num_targets": 32 if quick else 64,
        },
    )


def start_server(model_dir: str, db: Path, port: int, threads: int, workers: int = 1) -> subprocess.Popen:
    """`modelinv serve` in its own process(es) (clients and server do not share one interpreter lock)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MODELINV_QUIET": "1"}
    command = [sys.executable, "-m", "modelinv.cli", "serve", "--model", model_dir, "--expose", "probs", "--db", str(db),
               "--reference", "mnist5k", "--port", str(port), "--threads", str(threads), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stdout.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` and its children that are still running (its workers), from
    /proc (Linux); None elsewhere."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def one(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return one(pid) + sum(one(int(c)) for c in children)
    except (OSError, ValueError, IndexError):
        return None


def busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot, from /proc/stat (Linux); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
    except (OSError, ValueError, IndexError):
        return None


def load(port: int, token: str, bodies: list[bytes], clients: int, seconds: float, server_pid: int | None = None) -> dict:
    """`clients` threads send `bodies` in turn for `seconds`; throughput, latency percentiles, and the CPU time per
    request of the server (its processes) and of the clients (this process: the client threads, as the rest idles)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    gate = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        gate.wait()
        end, n = time.monotonic() + seconds, i
        while time.monotonic() < end:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/predict", body=bodies[n % len(bodies)], headers=headers)
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - t0)
            failures[i] += response.status != 200
            n += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    loadavg = os.getloadavg()[0]
    server_cpu, client_cpu, busy = cpu_seconds(server_pid) if server_pid else None, time.process_time(), busy_seconds()
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu
    server_cpu = cpu_seconds(server_pid) - server_cpu if server_cpu is not None else None
    others = (busy_seconds() - busy - server_cpu - client_cpu) / wall if busy is not None and server_cpu is not None else None
    lat = np.array([x for per in latencies for x in per]) * 1000
    return {"clients": clients, "requests": len(lat), "failures": sum(failures), "seconds": wall, "per_second": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()), "loadavg_1min": loadavg,
            "server_cpu_ms": 1000 * server_cpu / len(lat) if server_cpu is not None else None, "client_cpu_ms": 1000 * client_cpu / len(lat),
            "other_cores": max(0.0, others) if others is not None else None}


def load_study(servers: dict[str, tuple[int, int]], token: str, images: np.ndarray, seconds: float, repeats: int) -> list[dict]:
    """`repeats` repetitions of every level (single images at 1, 8, 32 clients; batches of 64 at 1 client) on each
    of `servers` (name: (port, pid)), levels and servers interleaved within each repetition."""
    singles = [json.dumps({"npy": encode_npy(images[i : i + 1])}).encode() for i in range(len(images))]
    batches = [json.dumps({"npy": encode_npy(images[i : i + 64])}).encode() for i in range(0, len(images) - 64, 64)]
    for port, _ in servers.values():
        load(port, token, singles, 8, 1.0)  # warm-up: threads, connections, allocator
    out = []
    for rep in range(repeats):
        for name, (port, pid) in servers.items():
            for clients in LEVELS:
                out.append({"server": name, "repeat": rep, "batch": 1, **load(port, token, singles, clients, seconds, pid)})
                print(f"  load {name} rep {rep} clients {clients}: {out[-1]['per_second']:.0f}/s p99 {out[-1]['p99_ms']:.1f} ms", flush=True)
            out.append({"server": name, "repeat": rep, "batch": 64, **load(port, token, batches, 1, max(1.0, seconds / 2), pid)})
    return out


def benign_study(port: int, store: KeyStore, images: np.ndarray, keys: int, queries: int, seed: int) -> list[str]:
    """`keys` benign keys each sending `queries` held-out images in random order, one per request; their key ids."""
    rng, made = np.random.default_rng(seed), []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(keys):
        token, key = store.create(f"benign-{stamp}-{i}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for j in rng.permutation(len(images))[:queries]:
            conn.request("POST", "/v1/predict", body=json.dumps({"npy": encode_npy(images[j : j + 1])}),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()
        made.append(key.id)
    return made


def ood_study(model_dir: str, splits, seed: int) -> dict:
    """Share of held-out test images and of uniform-noise images beyond the reference quantile, per statistic of modelinv.serve.ood."""
    model, _ = load_checkpoint(Path(model_dir))
    stats = FeatureStats.fit(model, splits.private_train)
    noise = torch.rand((len(splits.private_test), *splits.private_test.input_shape), generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, x in (("held-out test images", splits.private_test.x), ("uniform noise", noise)):
        with torch.no_grad():
            feature, residual = stats.distances(x.flatten(1).numpy(), model.embed(x).numpy())
        out[name] = {"feature": float(np.mean(feature > stats.scales[0])), "residual": float(np.mean(residual > stats.scales[1])),
                     "score": float(np.mean(np.maximum(feature / stats.scales[0], residual / stats.scales[1]) > 1))}
    return out


def monitor_study(db: Path, attack_names: dict[str, str], benign_ids: list[str]) -> dict:
    """Who the default detectors flag: attack keys (named by their run id; the latest key of each name) and benign keys."""
    store = KeyStore(db, create=False)
    try:
        latest = {k.name: k.id for k in store.list()}  # listed by creation time: the last key of a name wins
    finally:
        store.close()
    alerts = {a.key_id: a.evidence for a in scan(db)}
    attack_ids = {latest[rid]: label for rid, label in attack_names.items() if rid in latest}
    share = lambda ids, name=None: sum((k in alerts) if name is None else (name in alerts.get(k, {})) for k in ids) / max(1, len(ids))  # noqa: E731
    return {
        "attack_keys": len(attack_ids), "benign_keys": len(benign_ids),
        "detection_rate": share(attack_ids), "false_positive_rate": share(benign_ids),
        "by_detector": {name: {"attack": share(attack_ids, name), "benign": share(benign_ids, name)} for name in DETECTORS.names()},
        "evidence": {attack_ids[k]: alerts[k] for k in attack_ids if k in alerts},
        "missed": [label for k, label in attack_ids.items() if k not in alerts],
        "benign_flagged": {k: alerts[k] for k in benign_ids if k in alerts},
    }


# ---------------------------------------------------------------------------------------------- rendering


def spread(values: list[float], digits: int = 0) -> str:
    """'median [min, max]' over repetitions."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def level_table(rows: list[dict]) -> tuple[str, dict[int, list[float]]]:
    """The single-image table of one server's rows, and per level the throughput ratio to 1 client, per repetition."""
    reps = sorted({r["repeat"] for r in rows})
    singles = {c: [r for r in rows if r["batch"] == 1 and r["clients"] == c] for c in LEVELS}
    ratio = {c: [next(r["per_second"] for r in singles[c] if r["repeat"] == k) / next(r["per_second"] for r in singles[1] if r["repeat"] == k) for k in reps] for c in LEVELS}
    cpu = lambda group, field: spread([r[field] for r in group], 2) if all(r.get(field) is not None for r in group) else "n/a"  # noqa: E731
    body = [[c, sum(r["requests"] for r in singles[c]), sum(r["failures"] for r in singles[c]), spread([r["per_second"] for r in singles[c]]),
             spread(ratio[c], 2), spread([r["p50_ms"] for r in singles[c]], 1), spread([r["p99_ms"] for r in singles[c]], 1),
             cpu(singles[c], "server_cpu_ms"), cpu(singles[c], "client_cpu_ms")] for c in LEVELS]
    head = ["clients", "requests", "failures", "predictions/s", "x 1 client", "p50 ms", "p99 ms", "server CPU ms/request", "client CPU ms/request"]
    return table(head, body), ratio


def client_share(rows: list[dict]) -> str:
    """A sentence on what the client threads cost beside the server, per request (median over `rows`)."""
    if not rows or any(r.get("server_cpu_ms") is None for r in rows):
        return ""
    server, client = statistics.median(r["server_cpu_ms"] for r in rows), statistics.median(r["client_cpu_ms"] for r in rows)
    return (f" At 8 clients a request costs the server {server:.2f} ms of CPU and the client threads {client:.2f} ms ({100 * client / server:.0f}% of the "
            "server's), so the clients sharing the cores take only that share from the server.")


def per_repetition(rows: list[dict], reps: list[int]) -> list[str]:
    """Throughput per repetition and level, with what else ran: the cores other processes of the machine used
    during the level (from /proc/stat), or, in measurements that lack it, the 1-minute load average before it."""
    others = all(r.get("other_cores") is not None for r in rows)
    cell = (lambda r: f"{r['per_second']:.0f} ({r['other_cores']:.2f})") if others else (lambda r: f"{r['per_second']:.0f} ({r['loadavg_1min']:.2f})")  # noqa: E731
    what = "cores used by other processes during the level" if others else "1-minute load average before the level"
    return [f"Per repetition ({what}):", "",
            table(["repetition", *(f"{c} clients /s" for c in LEVELS)],
                  [[k, *(cell(r) for c in LEVELS for r in rows if r["batch"] == 1 and r["clients"] == c and r["repeat"] == k)] for k in reps])]


def load_section(measured: dict) -> list[str]:
    rows = [r for r in measured["load"] if r.get("server", "measured") == "measured"]
    single = [r for r in measured["load"] if r.get("server") == "one process"]
    reps = sorted({r["repeat"] for r in rows})
    singles = {c: [r for r in rows if r["batch"] == 1 and r["clients"] == c] for c in LEVELS}
    batch = [r for r in rows if r["batch"] == 64]
    loads = [r["loadavg_1min"] for r in measured["load"]]
    others = [r["other_cores"] for r in measured["load"] if r.get("other_cores") is not None]
    levels, ratio = level_table(rows)
    single_ms = [r["mean_ms"] for r in singles[1]]
    gain = [s / (b["mean_ms"] / 64) for s, b in zip(single_ms, batch)]
    met = statistics.median(ratio[8]) >= TARGET_SCALING
    workers = measured.get("server_workers", 1)
    server = f"`modelinv serve --workers {workers} --threads {measured['server_threads']}` ({workers} processes of {measured['server_threads']} prediction thread{'s' if measured['server_threads'] > 1 else ''}, one torch thread each)" \
        if workers > 1 else f"`modelinv serve --threads {measured['server_threads']}` (prediction threads, one torch thread each) in its own process"
    lines = [
        "## Load: single-image requests",
        "",
        f"Server: {server}; clients: threads of the benchmark process, each with a keep-alive `http.client` connection sending "
        f"request bodies built before the measurement, sharing the machine's {measured['cores']} available cores with the server. "
        f"{len(reps)} repetitions of {measured['seconds']:g} s per level, levels interleaved. Cells: median [min, max] over the repetitions "
        f"(with {len(reps)} repetitions the range is a {100 * (1 - 2 * 0.5 ** len(reps)):.0f}% confidence interval of the median). "
        "CPU per request: user + system time of the server's processes (from /proc) and of the benchmark process (its client threads) "
        "over the level, divided by the requests answered. "
        f"1-minute load average before the measurements: {min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f}; it counts the "
        "benchmark's own threads of the level before); " + (
            f"other processes used {spread(others, 2)} cores during the levels (from /proc/stat, less the server's and the clients' CPU): "
            "where they used a good part of a core, they competed for the cores and the figures understate a quiet machine."
            if others else f"a load above {measured['cores']} means other processes competed for the cores and the figures understate a quiet machine."),
        "",
        levels,
        "",
        "| batch of 64, 1 client | ms per request | ms per image | per-image gain over single requests |",
        "|---|---|---|---|",
        f"| {sum(b['requests'] for b in batch)} requests | {spread([b['mean_ms'] for b in batch], 2)} | {spread([b['mean_ms'] / 64 for b in batch], 3)} | {spread(gain, 1)}x |",
        "",
        f"Target (issue 18): throughput at 8 clients >= {TARGET_SCALING}x that at 1 client on 2 cores: measured {spread(ratio[8], 2)}x, "
        + ("**not met** by the median." if not met else "met by every repetition." if min(ratio[8]) >= TARGET_SCALING
           else f"met by the median, **not by every repetition** (lowest {min(ratio[8]):.2f}x; the machine was shared, see the load averages)."),
    ]
    if single:
        one, one_ratio = level_table(single)
        lines += [
            "",
            f"For comparison, one server process (`modelinv serve --threads {measured.get('single_threads', 2)}`, how the server ran before `--workers`), "
            "measured in turn with the levels above by the same clients:",
            "",
            one,
            "",
            "One process answers at most one request's Python at a time (the interpreter lock): HTTP parsing, routing, input checks and "
            "the query log's transaction are Python, and the prediction threads only overlap the model's few hundred microseconds of "
            f"torch. So it stays near its one-client rate ({spread(one_ratio[8], 2)}x at 8 clients), whatever `--threads` says; "
            "worker processes each hold their own lock and use every core." + client_share(singles[8]),
        ]
    lines += [
        "",
        *per_repetition(rows, reps),
    ]
    return lines


def attack_section(rows: list[dict], keys: dict[str, tuple]) -> list[str]:
    cell: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["run_id"] in keys:
            cell.setdefault(keys[r["run_id"]], []).append(r)
    body = []
    for data in ATTACKER_DATA:
        for where in ("HTTP", "in process"):
            group = cell.get((data, where), [])
            if group:
                body.append([data, where, len(group), metric_interval(group, "queries"), metric_interval(group, "target_test_acc"),
                             metric_interval(group, "ssim"), metric_interval(group, "psnr"), metric_interval(group, "attack_acc_top1")])
    same = all(
        sorted((r["seed"], r.get("ssim"), r.get("psnr")) for r in cell.get((d, "HTTP"), [])) == sorted((r["seed"], r.get("ssim"), r.get("psnr")) for r in cell.get((d, "in process"), []))
        for d in ATTACKER_DATA
    )
    return [
        "## Attacks over HTTP (runner experiments)",
        "",
        "`inverse-net` queries the served model through modelinv.oracle.RemoteOracle (`access.endpoint`), each run with its own key; "
        "the in-process rows run the same configs on the local oracle. Cells: mean [95% t interval over seeds].",
        "",
        table(["attacker data", "oracle", "seeds", "queries", "target acc", "SSIM", "PSNR dB", "judge top-1"], body),
        "",
        f"Over HTTP and in process, per seed, SSIM and PSNR are {'identical' if same else '**not identical**'} "
        "(inputs and answers travel as float32 .npy, bit for bit).",
    ]


def monitor_section(m: dict, ood: dict, benign_queries: int) -> list[str]:
    return [
        "## Query monitor",
        "",
        f"{m['attack_keys']} attack keys (the HTTP runs above) and {m['benign_keys']} benign keys (each {benign_queries} held-out test images in random order, "
        "one per request), default thresholds (`modelinv monitor DB` uses the same).",
        "",
        "| traffic | keys | flagged |",
        "|---|---|---|",
        f"| inverse-net attack | {m['attack_keys']} | detection rate {100 * m['detection_rate']:.0f}% |",
        f"| benign | {m['benign_keys']} | false-positive rate {100 * m['false_positive_rate']:.0f}% |",
        "",
        table(["detector", "attack keys flagged", "benign keys flagged"], [[n, f"{100 * v['attack']:.0f}%", f"{100 * v['benign']:.0f}%"] for n, v in m["by_detector"].items()]),
        "",
        "Out-of-distribution statistics (fitted on the training split, 99% quantile; feature covariance by Ledoit-Wolf, "
        "input subspace by PCA), share of inputs beyond the reference:",
        "",
        table(["inputs", "feature Mahalanobis", "PCA residual", "score (either)"],
              [[n, f"{100 * v['feature']:.1f}%", f"{100 * v['residual']:.1f}%", f"{100 * v['score']:.1f}%"] for n, v in ood.items()]),
        "",
        "Evidence per flagged attack key:",
        "",
        *[f"- `{name}`: " + "; ".join(f"{d}: {e}" for d, e in ev.items()) for name, ev in m["evidence"].items()],
        *([f"- missed: {', '.join(m['missed'])}"] if m["missed"] else []),
        "",
        "The volume rule catches inverse-net because the attack needs thousands of answers at once; an attacker that spreads "
        "the same queries below `volume.max_queries` per window is not flagged by it (nor by the out-of-distribution rule when "
        "it queries in-distribution images): the per-key query budget (`modelinv keys create --budget`) is what bounds that attacker. "
        "The class-sweep rule fires on the public-data runs because inverse-net queries the attacker's data in stored order, and "
        "modelinv's splits keep it sorted by class; an attacker that shuffles its queries would not trip it.",
    ]


def render(rows: list[dict], keys: dict[str, tuple], runs: list[benchmark.Run], measured: dict) -> str:
    lines = [
        "# `modelinv serve`: throughput, latency, attacks over HTTP and the query monitor",
        "",
        benchmark.provenance(runs, rows),
        f"- Served: LeNet on mnist5k ({measured['epochs']} epochs), `--expose probs`, one server per seed on 127.0.0.1:{measured['port']}; "
        f"load measured on seed {measured['load_seed']}'s server (test accuracy {measured['test_acc']:.4f}). Load measured by `{measured['command']}`.",
        "",
        *load_section(measured),
        "",
        *attack_section(rows, keys),
        "",
        *monitor_section(measured["monitor"], measured["ood"], measured["benign_queries"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = benchmark.parser(__file__, __doc__, seeds=3)
    p.add_argument("--epochs", type=int, default=10, help="LeNet training epochs (cached)")
    p.add_argument("--seconds", type=float, default=None, help="duration of each load level (default 8; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=3, help="repetitions of the load levels (at least 3)")
    p.add_argument("--server-workers", type=int, default=2, help="server processes (`modelinv serve --workers`)")
    p.add_argument("--server-threads", type=int, default=1, help="prediction threads per server process (`modelinv serve --threads`)")
    p.add_argument("--benign", type=int, default=None, help="benign keys (default 10; 3 with --quick)")
    p.add_argument("--benign-queries", type=int, default=None, help="queries per benign key (default 200; 50 with --quick)")
    p.add_argument("--port", type=int, default=8765, help="loopback port of the served models (part of the configs: keep it to resume)")
    args = p.parse_args()
    if args.repeats < 3:
        p.error("--repeats must be at least 3")
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    benign = args.benign if args.benign is not None else (3 if args.quick else 10)
    benign_queries = args.benign_queries or (50 if args.quick else 200)
    seeds = args.seeds[:1] if args.quick else args.seeds
    os.environ.setdefault("MODELINV_QUIET", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md, measured_path = out.with_suffix(".md"), out / ("load-quick.json" if args.quick else "load.json")

    keys: dict[str, tuple] = {}
    grids: dict[int, list[ExperimentConfig]] = {}
    for seed in seeds:
        grids[seed] = []
        for data in ATTACKER_DATA:
            for where, port in (("HTTP", args.port), ("in process", None)):
                cfg = config(seed, data, port, args.epochs, args.quick)
                grids[seed].append(cfg)
                keys[run_id(cfg)] = (data, where)
    attack_names = {run_id(c): f"inverse-net-{c.attacker_data}-seed{c.seed}" for g in grids.values() for c in g if c.access.endpoint is not None}

    runs: list[benchmark.Run] = []
    if args.render:
        runs = [benchmark.run([c for g in grids.values() for c in g], args)]
        measured = json.loads(measured_path.read_text())
    else:
        torch.set_num_threads(args.threads)  # the served target is the runner's: same thread count, same cached bits
        db = out / "serve.sqlite"
        store = KeyStore(db)
        measured = {"command": "python " + " ".join(sys.argv), "seconds": seconds, "server_threads": args.server_threads, "server_workers": args.server_workers,
                    "cores": available_cores(),
                    "epochs": args.epochs, "port": args.port, "load_seed": seeds[0], "benign_queries": benign_queries}
        benign_ids: list[str] = []
        done = {r["run_id"] for r in benchmark.read(out)} if (out / "results.sqlite").exists() else set()
        for seed in seeds:
            setting = prepare(grids[seed][0])
            server = start_server(setting.target_meta["path"], db, args.port, args.server_threads, args.server_workers)
            single = None
            try:
                for cfg in grids[seed]:
                    if cfg.access.endpoint is not None and run_id(cfg) not in done:  # a finished run keeps the key its traffic was logged under
                        token, _ = store.create(run_id(cfg))
                        os.environ[cfg.access.key_env] = token
                if seed == seeds[0]:
                    images = setting.splits.private_test.x.numpy()
                    load_token, _ = store.create("load-generator")
                    servers = {"measured": (args.port, server.pid)}
                    if args.server_workers > 1:  # the one-process server, for comparison, measured in turn with the same clients
                        single = start_server(setting.target_meta["path"], db, args.port + 1, SINGLE_THREADS, 1)
                        servers["one process"] = (args.port + 1, single.pid)
                        measured["single_threads"] = SINGLE_THREADS
                    measured["load"] = load_study(servers, load_token, images, seconds, args.repeats)
                    if single is not None:
                        stop_server(single)
                        single = None
                    measured["test_acc"] = setting.target_meta["metrics"]["test_acc"]
                    benign_ids = benign_study(args.port, store, images, benign, benign_queries, seed)
                    measured["ood"] = ood_study(setting.target_meta["path"], setting.splits, seed)
                runs.append(benchmark.run(grids[seed], args))
            finally:
                stop_server(server)
                if single is not None:
                    stop_server(single)
        store.close()
        measured["monitor"] = monitor_study(db, attack_names, benign_ids)
        measured_path.write_text(json.dumps(measured, indent=2))
    rows = [r for run in runs for r in run.rows]
    md.write_text(render(rows, keys, runs, measured))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
