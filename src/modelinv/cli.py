"""Command line: thin wrappers over the library. Errors in user input print one line and exit with code 2."""

# Imports of modelinv (and torch, fastapi, uvicorn) are inside the commands, lazily, for start-up time only (no cycle:
# cli is the top layer): `modelinv --help` takes 0.6-0.9 s so, 10-16 s with them at module level (torch alone ~4 s).

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from modelinv.errors import ModelinvError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Attack, defend and audit neural networks against model inversion.")
console = Console(soft_wrap=True)
MAX_SEED = 2**32 - 1  # NumPy's seed range; as experiment.config.Seed
DEVICE_HELP = "where models train and attacks run: auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N or mps; default: the config's (auto)"


class Catalogue(str, Enum):
    datasets = "datasets"
    models = "models"
    attacks = "attacks"
    defenses = "defenses"
    metrics = "metrics"


def catalogue(what: Catalogue) -> list[dict]:
    if what is Catalogue.datasets:
        from modelinv.data import describe_datasets

        return describe_datasets()
    if what is Catalogue.models:
        from modelinv.models import describe_models
        from modelinv.text import TEXT_TARGETS

        text = [{**TEXT_TARGETS.info(name), "kind": f"text target, releases {TEXT_TARGETS.info(name).get('releases')}"} for name in TEXT_TARGETS.names()]
        return describe_models() + text
    if what is Catalogue.attacks:
        from modelinv.attacks import describe_attacks

        return describe_attacks()
    if what is Catalogue.defenses:
        from modelinv.defenses import describe_defenses

        return describe_defenses()
    from modelinv.metrics import describe_metrics

    return describe_metrics()


@app.command("list")
def list_components(
    what: Optional[Catalogue] = typer.Argument(None, help="which catalogue; all when omitted"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List datasets, models (with cut layers), attacks, defenses and metrics."""
    chosen = [what] if what else list(Catalogue)
    listing = {c.value: catalogue(c) for c in chosen}
    if as_json:
        print(json.dumps(listing, indent=2, default=str))
        return
    for name, rows in listing.items():
        table = Table(title=name, show_lines=False)
        table.add_column("name")
        table.add_column("summary")
        table.add_column("details")
        for row in rows:
            details = row.get("cut_layers") or row.get("observes") or row.get("needs") or row.get("kind") or ""
            table.add_row(row["name"], row.get("summary", ""), ", ".join(details) if isinstance(details, list) else str(details))
        console.print(table)


@app.command()
def train(
    data: str = typer.Option("mnist5k", help="dataset name or file source (idx:, npz:, folder:, csv:)"),
    model: str = typer.Option("lenet", help="architecture name (see `modelinv list models`)"),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="seed for the split, initialisation and training"),
    split: str = typer.Option("same-distribution", help="threat-model split the private training set comes from"),
    epochs: Optional[int] = typer.Option(None, min=1, help="maximum epochs (early stopping on validation accuracy)"),
    image_size: Optional[int] = typer.Option(None, min=4, help="resize images to this size"),
    label_column: Optional[str] = typer.Option(None, help="label column of a csv: source"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Train a target model on the private training split (or load it from the cache) and report its accuracy."""
    from modelinv.devices import resolve_device
    from modelinv.experiment.config import DataConfig, ModelConfig
    from modelinv.experiment.runner import load_splits, train_model
    from modelinv.models.trainer import accuracy
    from modelinv.validation import validate

    on = resolve_device(device)  # a device this machine lacks fails before any work
    start = time.perf_counter()
    data_cfg = validate(DataConfig, {"source": data, "split": split, "image_size": image_size, "label_column": label_column}, "data")
    model_cfg = validate(ModelConfig, {"arch": model, "train": {} if epochs is None else {"epochs": epochs}}, "target")
    splits = load_splits(data_cfg, seed)
    net, meta = train_model("target", model_cfg, splits.private_train, splits.private_test, seed, device=on)
    acc = accuracy(net, splits.private_test)
    state = "loaded from cache" if meta["cached"] else f"trained in {meta['seconds']:.1f} s"
    console.print(f"{model} on {data} ({split}, seed {seed}): test accuracy {acc:.4f}, {state}")
    console.print(f"checkpoint: {meta['path']}  (total {time.perf_counter() - start:.1f} s)")


@app.command()
def run(
    config: Path = typer.Argument(..., help="experiment config (YAML)"),
    out: Path = typer.Option(..., "--out", help="results directory: results.sqlite and runs/<run_id>/ (config.yaml, results.json, image grid)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: the cores available to this process)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Run one experiment config (a grid of one): train or load the models, run the attack, score it."""
    from modelinv.experiment.config import load_config, with_device
    from modelinv.experiment.sweep import run_grid

    cfg = with_device(load_config(config), device)
    if as_json:  # standard output carries the JSON alone; progress goes to standard error
        from modelinv import progress

        progress.set_stream(sys.stderr)
    (row,) = run_grid([cfg], out, workers=1, threads=threads, command=command_line())
    if as_json:
        print(json.dumps({k: v for k, v in row.items() if k not in ("config",)}, indent=2, default=str))
        return
    from modelinv.metrics import METRICS

    metrics = {k: row[k] for k in ("target_test_acc", "evaluator_test_acc", *METRICS.names()) if k in row}
    console.print(f"{row['attack']} against {row['model']} ({row['access']}): " + ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items()))
    console.print(f"results in {row['artifacts']}/results.json and {out / 'results.sqlite'}")


def command_line() -> str:
    """This process's command, as recorded with the runs it produces."""
    import shlex

    return shlex.join(["modelinv", *sys.argv[1:]])


@app.command()
def tradeoff(
    config: Path = typer.Argument(..., help="trade-off config (YAML): an experiment without attack, plus `attacks`, a `sweep` and optional `seeds`"),
    out: Path = typer.Option(..., "--out", help="results directory: results.sqlite, runs/, tradeoff.md and tradeoff.png"),
    workers: Optional[int] = typer.Option(None, "--workers", help="runs at once (default 1: in this process)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run (default: available cores / workers)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Sweep one defense's strength, attack each defended target, plot target accuracy against attack success."""
    from modelinv.experiment.config import TradeoffConfig, load_config, with_device
    from modelinv.experiment.sweep import run_grid
    from modelinv.report import tradeoff as render

    cfg = with_device(load_config(config, TradeoffConfig), device)
    start = time.perf_counter()
    rows = run_grid(cfg.experiments(), out, workers=workers or 1, threads=threads, command=command_line(), log=console.print)
    s = cfg.sweep
    scenario = f"{cfg.target.arch} on {cfg.data.source} ({cfg.data.split}), attacker access {rows[0]['access']} (undefended), fixed defense params {s.params or 'none'}"
    (out / "tradeoff.md").write_text(render.markdown(rows, s.defense, s.param, scenario))
    render.plot(rows, s.defense, s.param, s.values, out / "tradeoff.png")
    console.print(f"tradeoff.md, tradeoff.png and results.sqlite in {out}/  (total {time.perf_counter() - start:.0f} s)")


def fmt(value) -> str:
    from modelinv.report.aggregate import fmt as significant

    return significant(value)


def print_table(title: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A table that is never squeezed below its natural width, even when output is not a terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*(fmt(row.get(c)) for c in columns))
    natural = Console(width=10_000).measure(table).maximum
    Console(width=max(console.width, 120, natural)).print(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="results directory: results.sqlite and runs/<run_id>/ with PNG grids"),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="seed of every run"),
    workers: Optional[int] = typer.Option(None, "--workers", help="runs at once, each in its own process (default: one per available core, or the cores divided by --threads)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run (default: the available cores divided among the workers)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """The main job: split-inference inversion attacks on MNIST (He et al. 2019 and the split-NN attacker)."""
    from modelinv.experiment.config import with_device
    from modelinv.experiment.demo import COLUMNS, demo_configs
    from modelinv.experiment.sweep import run_grid

    start = time.perf_counter()
    configs = [with_device(cfg, device) for cfg in demo_configs(seed)]
    console.print(f"modelinv demo: training (or loading) models and running {len(configs)} attacks on mnist5k")
    # runs in parallel, one torch thread each by default: small models parallelise far better across runs than
    # within an operation, and a process beside the demo then slows it by sharing cores, not by stalling threads
    rows = run_grid(configs, out, workers=workers, threads=threads, command=command_line(), log=console.print)
    print_table(f"split-inference inversion on mnist5k (seed {seed})", COLUMNS, rows)
    console.print(f"grids in {out}/runs/*/reconstructions.png; `modelinv results {out}`  (total {time.perf_counter() - start:.0f} s)")


def parse_normalize(text: Optional[str]) -> Optional[list]:
    """--normalize MEAN,STD (each a number, or per channel a/b/c) as [mean, std]; 'none' or nothing: None."""
    if text is None or text.strip().lower() == "none":
        return None
    parts = text.split(",")
    try:
        values = [[float(v) for v in part.split("/")] for part in parts]
    except ValueError:
        values = []
    if len(parts) != 2 or not all(values):
        raise ModelinvError(f"invalid '--normalize': expected MEAN,STD (e.g. 0.5,0.5 or 0.485/0.456/0.406,0.229/0.224/0.225), not '{text}'")
    return [v[0] if len(v) == 1 else v for v in values]


@app.command()
def audit(
    model: Optional[Path] = typer.Option(
        None, "--model", help="your trained model: safetensors weights of --arch, an ONNX file (m.onnx), a TorchScript file (--torchscript), or a text-encoder/char-lm checkpoint directory; none for --arch minilm"
    ),
    arch: Optional[str] = typer.Option(
        None, "--arch", help="architecture of the weights: a registered name (`modelinv list models`), a text target (text-encoder, char-lm, minilm), or module:path.to.factory, your own class (keys and layers by module path)"
    ),
    torchscript: bool = typer.Option(False, "--torchscript", help="the model file is TorchScript (code: needs --trust-model-code)"),
    trust_model_code: bool = typer.Option(False, "--trust-model-code", help="run a TorchScript model's code, in a confined worker process (see README: own models)"),
    normalize: Optional[str] = typer.Option(None, "--normalize", help="MEAN,STD applied to the [0, 1] inputs before your model (per channel: 0.485/0.456/0.406,0.229/0.224/0.225)"),
    expected_accuracy: Optional[float] = typer.Option(None, "--expected-accuracy", help="your model's known test accuracy: warn when the audit measures far less"),
    data: str = typer.Option(..., "--data", help="dataset name or file source (idx:, npz:, folder:, csv:; text models: records, text:PATH)"),
    access: str = typer.Option(..., "--access", help="what the attacker sees: features[:LAYER], probs, logits or label (text models: features for sentence encoders, logits for char-lm)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="label column of a csv: source"),
    tabular: Optional[Path] = typer.Option(None, "--tabular", help="YAML schema of tabular data: sensitive column, categorical levels, bins"),
    white_box: str = typer.Option("none", "--white-box", help="model part the attacker also knows: none, client, server, full"),
    attack: Optional[list[str]] = typer.Option(None, "--attack", help="attack to run (repeatable); default: all the access allows"),
    params: Optional[Path] = typer.Option(None, "--params", help="YAML mapping attack names to their parameters"),
    num_targets: Optional[int] = typer.Option(None, "--num-targets", min=1, help="private test inputs attacked (default 64; text: at most the private test texts)"),
    evaluator_epochs: Optional[int] = typer.Option(None, "--evaluator-epochs", min=1, help="training epochs of the judge (default 20)"),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    out: Path = typer.Option(Path("audit-out"), "--out", help="directory for report.html, audit.json and the runs"),
    accuracy_floor: Optional[float] = typer.Option(
        None, "--accuracy-floor", help="when no defense protects, strengthen them only while the target's accuracy stays at or above this fraction (default: 10 points below the undefended accuracy)"
    ),
    max_rounds: int = typer.Option(3, "--max-rounds", help="how many times the defense strengths may be extended when none protects (0: only the default strengths)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: the cores available to this process)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Audit your own model: run every attack your declared access allows, and rank output defenses."""
    from modelinv.api import audit_config, run_audit
    from modelinv.experiment.audit import load_params, read_mapping
    from modelinv.models.user import TORCHSCRIPT, is_factory, refuse_untrusted
    from modelinv.text import TEXT_TARGETS

    text = arch in TEXT_TARGETS
    if text and (torchscript or trust_model_code):
        raise ModelinvError(f"--torchscript and --trust-model-code apply to image and tabular models, not to text target '{arch}'")
    if model is None and not text:
        raise ModelinvError("give --model: your trained model (weights of --arch, an ONNX or a TorchScript file)")
    onnx = model is not None and arch is None and not torchscript and model.suffix.lower() == ".onnx"
    if not onnx and torchscript == (arch is not None):
        raise ModelinvError("give exactly one of --arch NAME and --torchscript (or an ONNX file, m.onnx)")
    if torchscript and not trust_model_code:
        refuse_untrusted(model, "a TorchScript file")
    cfg = audit_config(
        None if model is None else str(model.resolve()),
        "onnx" if onnx else TORCHSCRIPT if torchscript else arch,
        {"source": data, "label_column": label_column, "tabular": read_mapping(tabular, "tabular schema file") if tabular else None},
        access,
        trust_code=trust_model_code or is_factory(arch or ""),  # --arch module:factory on the command line is consent to import it
        normalize=parse_normalize(normalize),
        expected_accuracy=expected_accuracy,
        white_box=white_box,
        attacks=attack or None,
        params=load_params(params),
        num_targets=num_targets,
        seed=seed,
        evaluator_epochs=evaluator_epochs,
        accuracy_floor=accuracy_floor,
        max_rounds=max_rounds,
    )
    results = run_audit([cfg], out, threads=threads, command=command_line(), log=console.print, device=device)
    summary = results.summaries[0]
    for line in results.verdict + results.warnings:
        console.print(line)
    if summary.get("protection"):
        console.print(summary["protection"])
    console.print(f"report in {out / 'report.html'}")


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="grid config (YAML): a scenario plus lists of datasets, targets, defenses, attacks and seeds"),
    out: Path = typer.Option(..., "--out", help="directory for results.sqlite and runs/<run_id>/"),
    executor: str = typer.Option("local", "--executor", help="local (a process per core) or ray (tasks on a Ray cluster)"),
    address: Optional[str] = typer.Option(None, "--address", help="address of a Ray cluster; default: start a local Ray instance"),
    workers: Optional[int] = typer.Option(None, "--workers", help="runs at once; default: the cores (local) or the cluster's CPUs (ray)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run (default: available cores / workers)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
) -> None:
    """Run a grid of experiments in parallel; finished runs are kept, and running it again computes only the rest."""
    from modelinv.experiment.config import load_config, with_device
    from modelinv.experiment.grid import GridConfig
    from modelinv.experiment.sweep import run_grid, table

    start = time.perf_counter()
    grid = with_device(load_config(config, GridConfig), device)
    rows = run_grid(grid, out, executor, address, workers, threads, command=command_line(), log=console.print)
    print_table(f"sweep {config}", *table(rows))
    console.print(f"results in {out / 'results.sqlite'}: `modelinv results {out}`  (total {time.perf_counter() - start:.0f} s)")


def print_csv(records: list[dict]) -> None:
    """Every field of every record, nested values as JSON."""
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=list(dict.fromkeys(k for r in records for k in r)))
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()} for r in records)


@app.command()
def results(
    directory: Path = typer.Argument(..., help="a sweep's output directory (holding results.sqlite)"),
    output_format: str = typer.Option("table", "--format", help="table, csv or json"),
    where: Optional[list[str]] = typer.Option(None, "--where", help="FIELD=VALUE: only matching runs, e.g. defense=none (repeatable)"),
    board: bool = typer.Option(False, "--leaderboard", help="attacks ranked per defense and metric, mean and 95% interval over seeds"),
    metric: Optional[list[str]] = typer.Option(None, "--metric", help="only this metric (repeatable)"),
) -> None:
    """Show a sweep's finished runs, or its leaderboard."""
    from dataclasses import asdict

    from modelinv.experiment.sweep import table
    from modelinv.metrics import METRICS
    from modelinv.report.aggregate import Interval
    from modelinv.report.leaderboard import leaderboard
    from modelinv.results import ResultsStore, select

    if output_format not in ("table", "csv", "json"):
        raise ModelinvError(f"unknown format '{output_format}' (known: table, csv, json)")
    for name in metric or []:
        METRICS.get(name)
    store = ResultsStore(directory, create=False)
    try:
        rows = select(store.rows(), where or [])
    finally:
        store.close()
    if board:
        records = [asdict(entry) for entry in leaderboard(rows, metric or None)]
        columns = ("scope", "metric", "rank", "attack", "mean [95% interval]", "seeds", "target acc")
        shown = [
            {**r, "mean [95% interval]": Interval(r["mean"], r["low"], r["high"], r["seeds"]).text(), "target acc": r["target_test_acc"]} for r in records
        ]
    else:
        records = rows
        columns, shown = table(rows, metric, ids=True)
    if output_format == "json":
        print(json.dumps(records, indent=2))
    elif output_format == "csv":
        print_csv(records)
    else:
        print_table(f"{'leaderboard' if board else 'runs'} in {directory}", columns, shown)


@app.command()
def report(
    directory: Path = typer.Argument(..., help="a results directory (from `modelinv sweep` or `modelinv audit`)"),
    title: str = typer.Option("modelinv report", "--title", help="page title"),
) -> None:
    """Write DIR/report.html: verdict, leaderboard, privacy-utility plots, every run's images, environment."""
    from modelinv.report.html import write_report
    from modelinv.validation import check_output_dir

    check_output_dir(directory, "results directory")

    console.print(f"wrote {write_report(directory, title=title)}")


def parse_assignments(items: list[str], option: str) -> dict:
    """NAME=VALUE pairs (VALUE read as YAML: numbers, booleans, strings) as a dict; a malformed one names `option`."""
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ModelinvError(f"invalid '{option}': expected NAME=VALUE, not '{item}'")
        out[name] = yaml.safe_load(value)
    return out


@app.command()
def serve(
    model: Path = typer.Option(..., "--model", help="a checkpoint directory of the store (weights.safetensors + model.json)"),
    expose: str = typer.Option("probs", "--expose", help="what answers carry: probs, logits, top-k:K, label or features:LAYER"),
    defense: Optional[str] = typer.Option(None, "--defense", help="an output defense applied to every answer (see `modelinv list defenses`)"),
    defense_param: Optional[list[str]] = typer.Option(None, "--defense-param", help="NAME=VALUE parameter of the defense (repeatable)"),
    db: Path = typer.Option(Path("serve.sqlite"), "--db", help="SQLite database of API keys and the query log"),
    reference: Optional[str] = typer.Option(None, "--reference", help="dataset whose training split gives the feature statistics of the out-of-distribution detector"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port"),
    max_batch: int = typer.Option(512, "--max-batch", help="most inputs in one request"),
    max_body_mb: float = typer.Option(8.0, "--max-body-mb", help="largest request body in MiB"),
    seed: int = typer.Option(0, "--seed", help="seed of the server's random numbers (noise defenses)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="predictions computed at once per worker process, one torch thread each (default: the available cores divided among the workers)"),
    workers: int = typer.Option(1, "--workers", help="server processes sharing the port, the log, the budgets and the rate limits (POSIX); one process answers only as fast as its one interpreter lock allows, so use about one per core"),
    hide_identity: bool = typer.Option(False, "--hide-identity", help="keep the model's identity (architecture, weights digest) out of GET /v1/info; remote runs then cannot check it"),
) -> None:
    """Serve a checkpoint over HTTP behind API keys, rate limits and a query monitor (needs the `serve` extra)."""
    if not 1 <= port <= 65535:
        raise ModelinvError(f"invalid '--port': must be 1 to 65535, not {port}")
    if max_batch < 1:
        raise ModelinvError(f"invalid '--max-batch': must be at least 1 input, not {max_batch}")
    if not 0 < max_body_mb < float("inf") or int(max_body_mb * 2**20) < 1:
        raise ModelinvError(f"invalid '--max-body-mb': must be a positive number of MiB (at least one byte), not {max_body_mb}")
    if threads is not None and threads < 1:
        raise ModelinvError(f"invalid '--threads': must be at least 1, not {threads}")
    if workers < 1:
        raise ModelinvError(f"invalid '--workers': must be at least 1, not {workers}")
    import torch
    import uvicorn

    from modelinv.experiment.sweep import available_cores
    from modelinv.seeding import seed_everything
    from modelinv.serve.app import create_app
    from modelinv.serve.launch import load_served

    seed_everything(seed)
    torch.set_num_threads(1)  # concurrency comes from the prediction threads, each computing on one core
    params = parse_assignments(defense_param or [], "--defense-param")
    served, summary = load_served(model, expose, db, defense, params, reference, max_batch, int(max_body_mb * 2**20), hide_identity)
    if workers > 1:
        threads = threads or max(1, available_cores() // workers)
    processes = f", {workers} worker processes of {threads} prediction threads each" if workers > 1 else ""
    console.print(f"serving {summary['arch']} {summary['input_shape']} exposing {expose}" + (f" under {defense}" if defense else "") + f" on http://{host}:{port} (keys and log in {db}{processes})")
    if summary["reference"] is not None:
        ref = summary["reference"]
        console.print(f"out-of-distribution statistics from {ref['source']} ({'the training data' if ref['is_training_data'] else 'not the exact training data'}, sha256 {ref['digest'][:12]})")
    if workers > 1:
        from modelinv.serve.workers import serve_workers

        raise typer.Exit(serve_workers(served, host, port, workers, threads, seed))
    try:
        uvicorn.run(create_app(served, threads=threads), host=host, port=port, log_level="warning", access_log=False)
    finally:
        served.log.close()


keys_app = typer.Typer(no_args_is_help=True, help="API keys of a served model: create, list, revoke.")
app.add_typer(keys_app, name="keys")
DB_OPTION = typer.Option(Path("serve.sqlite"), "--db", help="SQLite database of the served model")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="who the key is for"),
    rate: Optional[float] = typer.Option(None, "--rate", help="requests per second (default: unlimited)"),
    burst: Optional[int] = typer.Option(None, "--burst", help="requests allowed at once before the rate applies"),
    budget: Optional[int] = typer.Option(None, "--budget", help="inputs answered over the key's lifetime (default: unlimited)"),
    admin: bool = typer.Option(False, "--admin", help="may read GET /v1/alerts"),
    db: Path = DB_OPTION,
) -> None:
    """Create a key; the token is printed once and only its salted hash is stored."""
    from modelinv.serve.keys import KeyStore

    token, key = KeyStore(db).create(name, rate, burst, budget, admin)
    console.print(f"key id {key.id} for '{name}'; token (shown once):")
    print(token)


@keys_app.command("list")
def keys_list(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List keys with their limits (never the tokens)."""
    from dataclasses import asdict

    from modelinv.serve.keys import KeyStore

    keys = [asdict(k) for k in KeyStore(db, create=False).list()]
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    rows = [{**k, "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(k["created"])), "revoked": "yes" if k["revoked"] else "no"} for k in keys]
    print_table(f"keys in {db}", ("id", "name", "admin", "rate", "burst", "budget", "created", "revoked"), rows)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (from `modelinv keys list`)"), db: Path = DB_OPTION) -> None:
    """Revoke a key: the server refuses it from the next request on."""
    from modelinv.serve.keys import KeyStore

    key = KeyStore(db, create=False).revoke(key_id)
    console.print(f"revoked key {key.id} ('{key.name}')")


@app.command()
def monitor(
    db: Path = typer.Argument(..., help="the SQLite database of a served model"),
    threshold: Optional[list[str]] = typer.Option(None, "--set", help="DETECTOR.PARAM=VALUE, e.g. volume.max_queries=500 (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print the keys whose queries look like an inversion attack, with each detector's evidence."""
    from dataclasses import asdict

    from modelinv.serve.detectors import build_detectors, scan

    params: dict = {}
    for name, value in parse_assignments(threshold or [], "--set").items():
        detector, _, param = name.partition(".")
        params.setdefault(detector, {})[param] = value
    alerts = scan(db, build_detectors(params))
    if as_json:
        print(json.dumps([asdict(a) for a in alerts], indent=2))
        return
    if not alerts:
        console.print(f"no key flagged in {db}")
    for alert in alerts:
        console.print(f"key {alert.key_id} ('{alert.key_name}', {alert.queries} queries) flagged:")
        for detector, evidence in alert.evidence.items():
            console.print(f"  {detector}: {evidence}")

def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except ModelinvError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever the message quotes
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's usage errors: missing argument, unknown option, bad value
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(2)
    if code == 130:  # typer returns 130 for Ctrl-C when not in standalone mode
        print("interrupted; finished results are kept", file=sys.stderr)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
