"""The Python API: audit or attack your own model from Python or a notebook, through the one pipeline.

    import modelinv
    results = modelinv.audit(my_net, data="mnist5k", access="features", layers=["features.3"], normalize=(0.5, 0.5), out="audit-out")
    results.to_pandas()          # one row per run (needs pandas); results.rows without it
    results.images()             # {run_id: {"originals", "reconstructions", "labels"}}
    results.report               # audit-out/report.html

`model` is a plain `nn.Module` (any class: cut layers are its module paths, read through forward hooks, no
re-architecture), or a file: safetensors weights with `arch` (a registered name or `module:factory`), an
ONNX file, or a TorchScript file (with `trust_code=True`, run confined: `models.contained`). A text model
(`arch` one of modelinv.text.TEXT_TARGETS) is audited on text data: a `text-encoder` or `char-lm` given as its
modelinv checkpoint directory, or `minilm` (pre-trained) with `model=None`. An `nn.Module`
is saved to `out/model.safetensors` with its own key names and loaded back from there by every run, so the
results record the weights' SHA-256. Its runs are reproducible in this process; give `arch="module:factory"`
(a class or function that builds it) to make each run's `config.yaml` reproducible anywhere with `modelinv run`.

Both functions build ordinary experiment configs (`experiment.audit.AuditConfig`, `ExperimentConfig`) and run
them with `experiment.sweep.run_grid` into `out`'s results store, exactly as `modelinv audit` and `modelinv
run` do; the CLI's `audit` command is `audit_config` + `run_audit`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.experiment.audit import AuditConfig, audit_grid, resolve_floor, stronger
from modelinv.experiment.config import DefenseConfig, ExperimentConfig, with_device
from modelinv.experiment.runner import load_splits
from modelinv.experiment.sweep import run_grid
from modelinv.models import evaluator_arch_for
from modelinv.models.onnx_model import ONNX
from modelinv.models.user import TORCHSCRIPT, describe, is_factory, load_user_model, net_normalize, normalisation_warnings, register_live
from modelinv.report.audit import cheapest, defense_outcomes, summarize
from modelinv.report.html import data_uri, html_table, write_report
from modelinv.results import defense_label
from modelinv.text import TEXT_TARGETS
from modelinv.validation import check_output_dir, validate

SUMMARY_COLUMNS = ("run_id", "attack", "defense", "layer", "access", "seed", "target_test_acc", "psnr", "ssim", "attack_acc_top1", "knn_dist", "queries", "seconds")


@dataclass
class Results:
    """What an audit or a run produced: result rows, the images of each run, the report, the verdict.

    Example:
        >>> results = modelinv.audit(net, data="mnist5k", access="probs")  # doctest: +SKIP
        >>> results.to_pandas()[["attack", "defense", "ssim"]]  # doctest: +SKIP
    """

    rows: list[dict[str, Any]]
    out: Path
    report: Path | None = None
    verdict: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)

    def table(self, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The rows as flat records (a pandas-compatible list of dicts): `columns`, default the main ones present."""
        chosen = columns or tuple(c for c in SUMMARY_COLUMNS if any(c in row for row in self.rows))
        return [{c: row.get(c) for c in chosen} for row in self.rows]

    def to_pandas(self, columns: tuple[str, ...] | None = None):
        """The rows as a pandas DataFrame (`columns` as in `table`); needs pandas."""
        try:
            import pandas
        except ImportError:
            raise ModelinvError("to_pandas needs pandas (pip install pandas); Results.table() gives the same records as a list of dicts") from None
        return pandas.DataFrame(self.table(columns))

    def images(self, run_id: str | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Each run's tensors (`reconstructions`, `labels`, `originals` when known), read from its run directory.

        Shape: reconstructions and originals (N, C, H, W) in [0, 1], labels (N,).
        """
        chosen = [r for r in self.rows if run_id is None or r["run_id"] == run_id]
        return {r["run_id"]: load_file(str(Path(r["artifacts"]) / "reconstructions.safetensors")) for r in chosen if r.get("artifacts")}

    def _repr_html_(self) -> str:
        """How Jupyter shows the results: the verdict and warnings, the table, and the first run's reconstruction
        grid (originals above their reconstructions) inline as a PNG data URI, with the report's path."""
        records = self.table()
        columns = list(records[0]) if records else []
        parts = [f"<p><b>modelinv results</b>: {len(self.rows)} runs in <code>{escape(str(self.out))}</code></p>"]
        parts += [f"<p>{escape(line)}</p>" for line in self.warnings + self.verdict]
        parts.append(html_table(columns, ([r[c] for c in columns] for r in records)) if records else "<p>(no runs)</p>")
        grid = next((Path(r["artifacts"]) / "reconstructions.png" for r in self.rows if r.get("artifacts") and (Path(r["artifacts"]) / "reconstructions.png").is_file()), None)
        if grid is not None:
            parts.append(f'<p>Reconstructions of {escape(grid.parent.name)}:</p><img alt="reconstructions" style="image-rendering: pixelated" src="{data_uri(grid.read_bytes())}">')
        if self.report:
            parts.append(f"<p>Report: <code>{escape(str(self.report))}</code></p>")
        return "\n".join(parts)

    def show_report(self, height: int = 700) -> "InlineReport":
        """The HTML report, for Jupyter to show inline (an iframe holding the whole page: the report is one
        self-contained file, its figures data URIs, so it needs no server and nothing the notebook can't reach).

        Example:
            >>> results.show_report()  # doctest: +SKIP  (the last expression of a cell: the report renders below it)
        """
        if self.report is None or not Path(self.report).is_file():
            raise ModelinvError("these results have no report: modelinv.audit writes one; for a run, `modelinv report OUT` writes OUT/report.html")
        return InlineReport(Path(self.report), height)

    def __repr__(self) -> str:
        lines = [f"Results: {len(self.rows)} runs in {self.out}" + (f", report {self.report}" if self.report else "")]
        lines += [f"  {line}" for line in self.warnings + self.verdict]
        return "\n".join(lines)


@dataclass(frozen=True)
class InlineReport:
    """An HTML report that Jupyter shows inline (`Results.show_report()`); its text form is the report's path."""

    path: Path
    height: int = 700

    def _repr_html_(self) -> str:
        page = self.path.read_text(encoding="utf-8")
        return (f'<iframe title="modelinv report {escape(str(self.path))}" srcdoc="{escape(page, quote=True)}" '
                f'style="width: 100%; height: {int(self.height)}px; border: 1px solid #ccc"></iframe>')

    def __repr__(self) -> str:
        return str(self.path)


def _save_module(model: nn.Module, out: Path) -> Path:
    """`model`'s weights, with its own key names, as out/model.safetensors (shared tensors stored once each)."""
    path = out / "model.safetensors"
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    tmp = out / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, path)
    return path


def target_of(model: nn.Module | str | Path | None, out: Path, arch: str | None, trust_code: bool) -> tuple[str | None, str, bool]:
    """(weights path, arch, trust_code) of the model an API call names: a module is saved under `out`; a text
    model is its checkpoint directory (None for the pre-trained minilm)."""
    if arch in TEXT_TARGETS:
        if isinstance(model, nn.Module):
            raise ModelinvError(f"a '{arch}' is audited from its modelinv checkpoint directory (model.json and weights.safetensors), not from a module")
        return (None if model is None else str(Path(model).resolve())), arch, False
    if model is None:
        raise ModelinvError("give the model: an nn.Module or a weights file (model=None only for a pre-trained text target, arch='minilm')")
    if isinstance(model, nn.Module):
        out.mkdir(parents=True, exist_ok=True)
        path = _save_module(model, out)
        if arch is not None and not is_factory(arch):
            raise ModelinvError(f"arch for an nn.Module must be module:path.to.factory (your class), not '{arch}'")
        return str(path.resolve()), arch or register_live(model), trust_code or arch is not None
    path = Path(model)
    if arch is None:
        suffix = path.suffix.lower()
        arch = ONNX if suffix == ".onnx" else TORCHSCRIPT if suffix in (".pt", ".pth", ".ts", ".jit") else None
        if arch is None:
            raise ModelinvError(f"give arch= for weights file {path} (a registered architecture or module:factory)")
    return str(path.resolve()), arch, trust_code or is_factory(arch)  # naming your factory in code is consent to import it


def audit_config(
    model_path: str | None,
    arch: str,
    data: str | dict[str, Any],
    access: str,
    *,
    trust_code: bool = False,
    normalize: Any = None,
    expected_accuracy: float | None = None,
    white_box: str = "none",
    attacks: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    num_targets: int | None = None,
    seed: int = 0,
    evaluator_epochs: int | None = None,
    defenses: list[dict[str, Any]] | None = None,
    accuracy_floor: float | None = None,
    max_rounds: int = 3,
) -> AuditConfig:
    """The validated audit config of a model file (what `modelinv audit` builds from its flags); `num_targets`
    None: the default (64; a text audit attacks at most its private test texts).

    Example:
        >>> cfg = audit_config("lenet.safetensors", "lenet", "mnist5k", "features:relu2")  # doctest: +SKIP
        >>> cfg = audit_config("models/text-encoder-KEY/model", "text-encoder", "text:notes.txt", "features")  # doctest: +SKIP
    """
    options = {k: v for k, v in (("trust_code", trust_code), ("normalize", normalize), ("expected_acc", expected_accuracy)) if v not in (None, False)}
    return validate(
        AuditConfig,
        {
            "model": None if model_path is None else str(model_path),
            "arch": arch,
            "data": {"source": data} if isinstance(data, str) else data,
            "access": access,
            "white_box": white_box,
            "attacks": attacks or None,
            "params": params or {},
            **({} if num_targets is None else {"num_targets": num_targets}),
            "seed": seed,
            "evaluator": None if evaluator_epochs is None else {"arch": evaluator_arch_for(arch), "train": {"epochs": evaluator_epochs}},
            "target_options": options,
            "defenses": defenses,
            "accuracy_floor": accuracy_floor,
            "max_rounds": max_rounds,
        },
    )


def model_name(path: str | None, arch: str) -> str:
    """How the report names the model under audit: its file, a text checkpoint by its directory, minilm by its name."""
    if path is None:
        return arch
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.name == "model" and p.parent.name else p.name


def text_model_lines(cfg: ExperimentConfig, rows: list[dict[str, Any]]) -> list[str]:
    """The report's first line for a text model: what it is and releases, its accuracy on the audit's private test
    texts where measured; then, when output defenses were run, that their cost to the model's use is not measured."""
    target = cfg.target
    releases = TEXT_TARGETS.info(target.arch)["releases"]
    undefended = [r for r in rows if not r.get("defense")]
    accuracy = (undefended or rows)[0].get("target_test_acc") if rows else None
    if accuracy is not None:
        what = "next-character accuracy" if releases == "logits" else "accuracy"
        measured = f"{what} {accuracy:.3g} on the audit data's private test texts"
    elif target.weights is None:
        measured = "pre-trained: no classes to measure an accuracy on"
    else:
        measured = "no accuracy measured (the audit data's labels are not the classes it was trained on)"
    name = "all-MiniLM-L6-v2 from the text extra" if target.weights is None else model_name(target.weights, target.arch)
    lines = [f"Model under audit: {name} ({target.arch}, a text model releasing {'sentence embeddings' if releases == 'features' else 'next-character logits'}), {measured}."]
    if any(r.get("defense") for r in rows):
        lines.append(
            "Output defenses on a text model are measured for privacy only: the accuracy beside each is the undefended model's, "
            "so what the noise or rounding costs the embeddings' or scores' own use is not measured (cost 0 is not a measurement)."
        )
    return lines


def model_lines(cfg: ExperimentConfig, rows: list[dict[str, Any]]) -> list[str]:
    """The report's first line (the model, its input normalisation, its measured accuracy) and the warnings
    when that accuracy looks wrong (far below the expected one, or near chance), naming the likely cause.
    A text model's lines are `text_model_lines`."""
    target = cfg.target
    if target.arch in TEXT_TARGETS:
        return text_model_lines(cfg, rows)
    splits = load_splits(cfg.data, cfg.seed)
    data = splits.private_test
    net = load_user_model(Path(target.weights), target.arch, data.input_shape, data.num_classes, target.args, trust_code=target.trust_code, normalize=target.normalize)
    try:
        undefended = [r for r in rows if not r.get("defense")]
        accuracy = undefended[0]["target_test_acc"] if undefended else rows[0]["target_test_acc"]
        line = (
            f"Model under audit: {Path(target.weights).name} ({target.arch}), input normalisation {describe(net_normalize(net))}, "
            f"accuracy {accuracy:.3g} on the audit data's private test split" + (f" (expected {target.expected_acc:.3g})" if target.expected_acc is not None else "")
        )
        if net.spec.get("contained"):
            line += f"; run contained: {', '.join(net.spec['contained'])}"
        return [line, *normalisation_warnings(net, data, accuracy, target.expected_acc)]
    finally:
        if hasattr(net, "close"):
            net.close()


def _extend(cfg: AuditConfig, grid: list[ExperimentConfig], rows: list[dict[str, Any]], state: dict[str, Any]) -> list[ExperimentConfig]:
    """The next round of one audit's strength extension (experiment.audit.stronger): the experiments to add to
    its grid (`grid`, `rows` its rows so far, in order), or [] with the reason in `state["stopped"]`."""
    undefended = [r for r in rows if not r.get("defense")]
    if not undefended:
        state["stopped"] = "nothing measured"
        return []
    outcomes = defense_outcomes(rows)
    plain = next(o for o in outcomes if o["name"] is None)
    if state["rounds"] == 0:
        state["floor"] = resolve_floor(cfg, plain["accuracy"])
    if plain["protects"]:
        state["stopped"] = "no attack leaks undefended"
        return []
    if cheapest(outcomes) is not None:
        state["stopped"] = "a defense protects"
        return []
    if state["rounds"] >= cfg.max_rounds:
        state["stopped"] = "max_rounds reached"
        return []
    accuracy = {o["defense"]: o["accuracy"] for o in outcomes}
    tried = {defense_label(row): (exp.defense, accuracy.get(defense_label(row))) for exp, row in zip(grid, rows) if exp.defense is not None}
    new, at_floor = stronger(list(tried.values()), state["floor"])
    if not new:
        state["stopped"] = "accuracy floor reached" if at_floor else "no stronger setting"
        return []
    state["rounds"] += 1
    state["added"] += [defense_label({"defense": d.name, "defense_params": d.params}) for d in new]
    plain_runs = list({exp.attack.name: exp for exp in grid if exp.defense is None}.values())
    return [exp.model_copy(update={"defense": d}) for d in new for exp in plain_runs]


def _extension_note(state: dict[str, Any]) -> str | None:
    """One sentence on how the strengths were extended, or None when they were not tried."""
    floor = f"{state['floor']:.1%}" if state["floor"] is not None else "none"
    if state["rounds"] == 0 and state["stopped"] not in ("accuracy floor reached", "max_rounds reached"):
        return None
    added = f"added {', '.join(state['added'])}" if state["added"] else "none added"
    return f"Defense strengths extended in {state['rounds']} round{'' if state['rounds'] == 1 else 's'} ({added}; accuracy floor {floor}): stopped because {state['stopped']}."


def run_audit(
    configs: list[AuditConfig], out: Path, threads: int | None = None, command: str = "", log: Callable[[str], None] = lambda line: None, device: str | None = None
) -> Results:
    """Run audits (one per access, e.g. one per cut layer) into `out` as one grid, on `device` (None: each
    experiment's own, auto); write audit.json and report.html.

    When no defense tried protects, the strengths are extended (experiment.audit.stronger) and the new settings
    run through the same grid into the same store (finished runs are kept), round by round, until a defense
    protects, accuracy falls below each audit's `accuracy_floor`, or its `max_rounds` have run.

    Example:
        >>> results = run_audit([audit_config("m.onnx", "onnx", "mnist5k", "probs")], Path("audit-out"))  # doctest: +SKIP
    """
    out = Path(out)
    check_output_dir(out, "output directory")
    grids = [[with_device(c, device) for c in audit_grid(cfg)] for cfg in configs]
    states: list[dict[str, Any]] = [{"floor": None, "rounds": 0, "added": [], "stopped": None} for _ in configs]
    while True:
        rows = run_grid([c for grid in grids for c in grid], out, workers=1, threads=threads, command=command, log=log)
        own, start = [], 0
        for grid in grids:
            own.append(rows[start : start + len(grid)])
            start += len(grid)
        extra = [_extend(cfg, grid, mine, state) for cfg, grid, mine, state in zip(configs, grids, own, states)]
        if not any(extra):
            break
        for grid, more in zip(grids, extra):
            grid.extend(more)
        labels = dict.fromkeys(defense_label({"defense": e.defense.name, "defense_params": e.defense.params}) for more in extra for e in more)
        log(f"No defense protects yet: extending strengths ({', '.join(labels)})")
    by_id = {r["run_id"]: r for r in rows}
    summaries, verdict = [], []
    for cfg, mine, state in zip(configs, own, states):
        summary = summarize({**cfg.model_dump(mode="json"), "accuracy_floor": state["floor"]}, cfg.access, mine)
        note = _extension_note(state)
        summary["strengths"] = {**state, "max_rounds": cfg.max_rounds, "note": note}
        summaries.append(summary)
        lines = summary["verdict"] + ([note] if note else [])
        verdict += [f"{cfg.access}: {line}" if len(configs) > 1 else line for line in lines]
    first = grids[0][0] if grids and grids[0] else None
    head = model_lines(first, rows) if first is not None and rows else []
    warnings = [line for line in head if line.startswith("Warning")]
    payload = summaries[0] if len(summaries) == 1 else {"audits": summaries}
    (out / "audit.json").write_text(json.dumps({**payload, "model": head[:1], "warnings": warnings}, indent=2, default=str))
    floors = {state["floor"] for state in states}
    floor = floors.pop() if len(floors) == 1 else None  # the report quotes one floor; several audits of one model share it
    report = write_report(out, title=f"Model-inversion audit of {model_name(configs[0].model, configs[0].arch)}", verdict=head + verdict, accuracy_floor=floor)
    return Results(rows=[by_id[r["run_id"]] for r in rows], out=out, report=report, verdict=head[:1] + verdict, warnings=warnings, summaries=summaries)


def audit(
    model: nn.Module | str | Path | None,
    data: str | dict[str, Any] = "mnist5k",
    access: str = "probs",
    layers: list[str] | None = None,
    normalize: Any = None,
    out: str | Path = "audit-out",
    *,
    arch: str | None = None,
    trust_code: bool = False,
    expected_accuracy: float | None = None,
    white_box: str = "none",
    attacks: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    num_targets: int | None = None,
    seed: int = 0,
    evaluator_epochs: int | None = None,
    defenses: list[dict[str, Any]] | None = None,
    accuracy_floor: float | None = None,
    max_rounds: int = 3,
    threads: int | None = None,
    log: Callable[[str], None] = lambda line: None,
    device: str | None = None,
) -> Results:
    """Audit any model: every attack the access allows, at each of `layers`, against trivial baselines and output defenses.

    `access` is what the attacker sees: "features" (then `layers` names the cut layers by module path, one
    audit each), "features:LAYER", "probs", "logits" or "label"; `white_box` what it also knows ("client",
    "server", "full"). `normalize=(mean, std)` is applied to the [0, 1] data before the model (None: as
    they are); it is shown in the report with the measured accuracy, and a warning names it when the
    accuracy is far below `expected_accuracy` or another common normalisation does much better.
    `defenses` lists the output defenses to rank ({"name", "params"}; default: three strengths of each
    defense the access allows; [] for none); when none of them protects, their strengths are extended up to
    `max_rounds` times while the target's accuracy stays at or above `accuracy_floor` (a fraction; default: 10
    points below the undefended accuracy). `device` is where models train and attacks run: auto (the
    default: CUDA when available, else MPS, else the CPU), cpu, cuda, cuda:N or mps. `num_targets`: private
    inputs attacked (default 64; a text audit attacks at most its private test texts).

    A text model (`arch` one of modelinv.text.TEXT_TARGETS) is audited on text data (`data="records"`,
    `"text:notes.txt"`): `model` is the checkpoint directory of a `text-encoder` (access "features") or a
    `char-lm` (access "logits") trained by modelinv, or None for the pre-trained `minilm`.

    Shape: the model takes (N, C, H, W) images in [0, 1] (after `normalize`) and returns (N, classes) logits.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 24 * 24, 10))  # doctest: +SKIP
        >>> results = modelinv.audit(net, data="mnist5k", access="features", layers=["1"], out="audit-out")  # doctest: +SKIP
        >>> results.to_pandas()  # doctest: +SKIP
    """
    out = Path(out)
    observe, _, layer = access.partition(":")
    if layers and (observe != "features" or layer):
        raise ModelinvError(f"layers= applies to access='features' (one audit per layer), not '{access}'")
    if observe == "features" and not layer and not layers and arch not in TEXT_TARGETS:  # a sentence encoder releases its embedding
        raise ModelinvError("access='features' needs the cut layers: layers=['module.path', ...] (or access='features:LAYER')")
    accesses = [f"features:{name}" for name in layers] if layers else [access]
    check_output_dir(out, "output directory (out)")
    path, arch, trust = target_of(model, out, arch, trust_code)
    configs = [
        audit_config(
            path, arch, data, a, trust_code=trust, normalize=normalize, expected_accuracy=expected_accuracy, white_box=white_box,
            attacks=attacks, params=params, num_targets=num_targets, seed=seed, evaluator_epochs=evaluator_epochs, defenses=defenses,
            accuracy_floor=accuracy_floor, max_rounds=max_rounds,
        )
        for a in accesses
    ]
    return run_audit(configs, out, threads=threads, command="modelinv.audit(...)", log=log, device=device)


def run(
    model: nn.Module | str | Path | None,
    attack: str,
    data: str | dict[str, Any] = "mnist5k",
    access: str = "probs",
    normalize: Any = None,
    out: str | Path = "run-out",
    *,
    arch: str | None = None,
    trust_code: bool = False,
    white_box: str = "none",
    params: dict[str, Any] | None = None,
    defense: dict[str, Any] | None = None,
    num_targets: int = 64,
    seed: int = 0,
    evaluator_epochs: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = lambda line: None,
    device: str | None = None,
) -> Results:
    """One attack on any model (a grid of one, as `modelinv run`): its result row, images and report.

    `access` is "features:LAYER" (a module path of the model), "probs", "logits" or "label"; `defense` an
    output defense as {"name": ..., "params": {...}}; `device` as in `audit`.

    Shape: as `audit`.

    Example:
        >>> results = modelinv.run(net, "rmle", access="features:features.3", white_box="client", normalize=(0.5, 0.5))  # doctest: +SKIP
        >>> results.rows[0]["ssim"]  # doctest: +SKIP
    """
    out = Path(out)
    check_output_dir(out, "output directory (out)")
    path, arch, trust = target_of(model, out, arch, trust_code)
    cfg = audit_config(path, arch, data, access, trust_code=trust, normalize=normalize, white_box=white_box, params={attack: params or {}}, num_targets=num_targets, seed=seed, evaluator_epochs=evaluator_epochs)
    experiment = with_device(cfg.experiment(attack, validate(DefenseConfig, defense) if defense else None), device)
    rows = run_grid([experiment], out, workers=1, threads=threads, command="modelinv.run(...)", log=log)
    head = model_lines(experiment, rows)
    report = write_report(out, title=f"modelinv run of {model_name(path, arch)}", verdict=head)
    return Results(rows=rows, out=out, report=report, verdict=head[:1], warnings=[line for line in head if line.startswith("Warning")])
