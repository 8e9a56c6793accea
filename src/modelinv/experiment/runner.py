"""Run one experiment: a pure function of its config and the cached models it trains or loads.

Devices: the run's device is `cfg.device` resolved on this machine (`modelinv.devices.resolve_device`). The
target and the judge are trained (or loaded) onto it, the attacker's images and the victims' inputs are
moved to it, and the attack works there; metrics compare on the CPU (`MetricInputs`). A TorchScript target
run in its confined worker process stays on the CPU, and so does its attack. The row records the device the
attack and the target actually used (`device`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from modelinv.attacks import ATTACKS, Attack, Targets
from modelinv.attacks.goals import goal
from modelinv.data import load, make_splits
from modelinv.data.schema import apply_schema, sensitive_of
from modelinv.data.types import Dataset, ImageDataset, Splits, TabularDataset
from modelinv.defenses import DEFENSES, Defense, OutputDefense, build_defense
from modelinv.devices import resolve_device
from modelinv.errors import ModelinvError
from modelinv.experiment.config import DataConfig, ExperimentConfig, ModelConfig
from modelinv.experiment.text import is_text, run_text_experiment
from modelinv.images import save_class_grid, save_grid
from modelinv.metrics import METRICS, MetricInputs, compute
from modelinv.metrics.base import run_evaluator
from modelinv.models import build_model, evaluator_arch_for
from modelinv.models.contained import ContainedNet
from modelinv.models.layered import LayeredNet
from modelinv.models.sklearn_adapter import train_or_fit
from modelinv.models.store import ModelRequest, is_cached
from modelinv.models.trainer import accuracy
from modelinv.models.user import file_digest, load_user_model
from modelinv.oracle import Features, RemoteOracle, Scores, ThreatModel, WhiteBox, check_identity, connect
from modelinv.seeding import seed_everything
from modelinv.versions import versions


@dataclass
class Setting:
    """The data and trained models an experiment's attack runs against."""

    splits: Splits
    target: LayeredNet
    target_meta: dict[str, Any]
    evaluator: LayeredNet | None
    evaluator_meta: dict[str, Any] | None
    timings: dict[str, float]
    defense: Defense | None = None


def load_splits(d: DataConfig, seed: int) -> Splits:
    """Load the configured source(s) and split them into the threat model's parts."""
    data = load(d.source, image_size=d.image_size, label_column=d.label_column)
    public = load(d.public_source, image_size=d.image_size) if d.public_source else None
    if d.tabular is not None:
        data = apply_schema(data, d.tabular)
        public = apply_schema(public, d.tabular) if public is not None else None
    if public is not None and d.split != "cross-domain":
        raise ModelinvError(f"data.public_source is only used by the cross-domain split, not '{d.split}'")
    return make_splits(
        d.split,
        data,
        seed=seed,
        public_data=public,
        test_fraction=d.test_fraction,
        public_fraction=d.public_fraction,
        private_classes=d.private_classes,
        evaluator_fraction=d.evaluator_fraction,
        judge_classes=d.judge_classes,
    )


def on_device(model: LayeredNet, device: torch.device) -> LayeredNet:
    """`model` moved to `device`; a TorchScript model run in its worker process stays on the CPU."""
    return model if isinstance(model, ContainedNet) else model.to(device)


def train_model(
    role: str, model: ModelConfig, data: Dataset, test: Dataset, seed: int, defense: Defense | None = None, device: torch.device | str = "cpu"
) -> tuple[LayeredNet, dict[str, Any]]:
    """Train (or load from the cache) a classifier described by `model` on `data`, with `defense`'s training, on
    `device` (where the returned model is).

    With `model.weights` the given model is loaded instead (a user's own, for an audit): nothing is trained,
    so a defense that changes training is refused."""
    device = torch.device(device)
    if model.weights is not None:
        if defense is not None and defense.training_spec():
            raise ModelinvError(
                f"defense '{defense.name}' changes how the {role} is trained; it cannot apply to given weights ({role}.weights)"
                + (": set defense.params.train to false" if "train" in type(defense.params).model_fields else "")
            )
        net = load_user_model(Path(model.weights), model.arch, data.input_shape, data.num_classes, model.args, trust_code=model.trust_code, normalize=model.normalize)
        net = on_device(net, device)
        meta = {"path": str(model.weights), "sha256": file_digest(Path(model.weights)), "cached": True, "metrics": {"test_acc": accuracy(net, test)}}
        return net, meta
    request = model_request(role, model, data, seed, defense, device)
    return train_or_fit(request, data, test=test, hooks=defense)  # the store uses hooks only when request.defense is set


def model_request(role: str, model: ModelConfig, data: Dataset, seed: int, defense: Defense | None, device: torch.device | str) -> ModelRequest:
    """What determines the classifier `model` trained on `data` (its cache key), at this process's thread count."""
    return ModelRequest(
        role=role,
        arch=model.arch,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        data_digest=data.digest(),
        seed=seed,
        args=model.args,
        train=model.train.model_dump(),
        defense=defense.training_spec() if defense else {},
        device=str(torch.device(device)),
    )


def judge_config(cfg: ExperimentConfig, splits: Splits) -> ModelConfig | None:
    """The evaluation classifier of a run: the configured one, else the default for images (none for tabular data)."""
    if cfg.evaluator is not None or not isinstance(splits.private_train, TabularDataset):  # the default judge classifies images
        return cfg.evaluator or ModelConfig(arch=evaluator_arch_for(cfg.target.arch), train={"epochs": 20})
    return None


def trained_before(cfg: ExperimentConfig, splits: Splits, threads: int) -> set[str]:
    """Which of the run's classifiers ("target", "evaluator") need no training at `threads` torch threads: given
    weights, or already in the model cache."""
    device = resolve_device(cfg.device)
    ready = set()
    if cfg.target.weights is not None or is_cached(replace(model_request("target", cfg.target, splits.private_train, cfg.seed, make_defense(cfg, splits.private_train), device), threads=threads)):
        ready.add("target")
    judge = judge_config(cfg, splits)
    if judge is None or judge.weights is not None or is_cached(replace(model_request("evaluator", judge, splits.evaluator_train, cfg.seed, None, device), threads=threads)):
        ready.add("evaluator")
    return ready


def weights_sha256(meta: dict[str, Any] | None) -> str | None:
    """The SHA-256 of the weights file a trained or loaded model's metadata describes (provenance of a result row):
    `sha256` (a user's file, a cached classifier), else the cache artifact's `weights_sha256` of its `model`."""
    if meta is None:
        return None
    return meta.get("sha256") or (meta.get("weights_sha256") or {}).get("model")


def cut_layer(cfg: ExperimentConfig, model: LayeredNet, needed: bool = False) -> str | None:
    """The cut layer the access (or a `needed` one, for a defense) uses: access.layer, else the model's split layer."""
    access = cfg.access
    layer = access.layer or model.default_cut
    needed = needed or access.observe == "features" or access.white_box in ("client", "server")
    if needed and layer is None:
        raise ModelinvError(
            f"access.layer is required: model '{model.arch}' has no default split layer (cut layers: {', '.join(model.cut_layers)})"
        )
    if layer is not None:
        model.check_layer(layer)
    return layer if needed else None


def make_defense(cfg: ExperimentConfig, data: Dataset) -> Defense | None:
    """The configured defense, on the target's cut layer where it acts on one; checked before any training."""
    if cfg.defense is None:
        return None
    layer = None
    if DEFENSES.get(cfg.defense.name).needs_layer:
        if cfg.target.weights is not None:
            skeleton = load_user_model(Path(cfg.target.weights), cfg.target.arch, data.input_shape, data.num_classes, cfg.target.args, trust_code=cfg.target.trust_code, normalize=cfg.target.normalize)
        else:
            skeleton = build_model(cfg.target.arch, data.input_shape, data.num_classes, **cfg.target.args)
        layer = cut_layer(cfg, skeleton, needed=True)
    defense = build_defense(cfg.defense.name, cfg.defense.params, layer)
    if isinstance(defense, OutputDefense):
        defense.check_observation(cfg.access.observe)
    return defense


def prepare(cfg: ExperimentConfig) -> Setting:
    """Load the data and split it, then train or load the (defended) target and the evaluation classifier on
    the run's device (`cfg.device`)."""
    device = resolve_device(cfg.device)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    splits = load_splits(cfg.data, cfg.seed)
    timings["data"] = time.perf_counter() - start
    defense = make_defense(cfg, splits.private_train)
    start = time.perf_counter()
    target, target_meta = train_model("target", cfg.target, splits.private_train, splits.private_test, cfg.seed, defense, device)
    timings["target"] = time.perf_counter() - start
    evaluator, evaluator_meta = None, None
    judge = judge_config(cfg, splits)
    if judge is not None:
        start = time.perf_counter()
        evaluator, evaluator_meta = train_model("evaluator", judge, splits.evaluator_train, splits.private_test, cfg.seed, device=device)
        timings["evaluator"] = time.perf_counter() - start
    return Setting(splits, target, target_meta, evaluator, evaluator_meta, timings, defense)


def build_threat(cfg: ExperimentConfig, model: LayeredNet, defense: Defense | None = None) -> tuple[ThreatModel, str | None]:
    """The oracles `cfg.access` grants over `model`, observations perturbed by an output `defense`, and the cut layer."""
    access = cfg.access
    layer = cut_layer(cfg, model)
    output = defense if isinstance(defense, OutputDefense) else None
    observer = None
    if access.endpoint is not None:
        observer = connect(access, layer, output, resolve_device(cfg.device))
        check_identity(observer, cfg.target.arch, model)  # the served model must be the config's target
    elif access.observe == "features":
        observer = Features(model, layer, budget=access.query_budget, defense=output)
    elif access.observe is not None:
        observer = Scores(model, access.observe, budget=access.query_budget, defense=output)
    elif output is not None:
        output.check_observation(None)
    white_box = WhiteBox(model, access.white_box, layer) if access.white_box != "none" else None
    return ThreatModel(observer=observer, white_box=white_box), layer


def attacker_dataset(cfg: ExperimentConfig, splits: Splits) -> Dataset:
    """The data the attacker queries or trains with (He et al. Table 4: same set, same distribution, noise)."""
    if cfg.attacker_data == "private-train":
        return splits.private_train
    if cfg.attacker_data == "public+private-train":
        public, private = splits.public, splits.private_train
        if public.classes != private.classes:
            raise ModelinvError(f"attacker_data 'public+private-train' needs a split whose public and private data share classes, not '{splits.kind}'")
        return replace(public, x=torch.cat([public.x, private.x]), y=torch.cat([public.y, private.y]), name="public+private-train")
    if cfg.attacker_data in ("uniform-noise", "gaussian-noise"):
        public = splits.public
        gen = torch.Generator().manual_seed(cfg.seed)
        shape = (len(public), *public.input_shape)
        if cfg.attacker_data == "uniform-noise":
            noise = torch.rand(shape, generator=gen)
        else:  # He et al. (2019) draw the attacker's random inputs from a Gaussian; ours N(0.5, 0.25^2), clipped to [0, 1]
            noise = (0.5 + 0.25 * torch.randn(shape, generator=gen)).clamp(0.0, 1.0)
        return ImageDataset(x=noise, y=torch.zeros(len(public), dtype=torch.long), classes=public.classes, name=cfg.attacker_data)
    return splits.public


def check_names(cfg: ExperimentConfig) -> tuple[Attack, list[str]]:
    """Fail fast, before any training, on an unknown attack, attack parameter or metric."""
    attack = ATTACKS.get(cfg.attack.name)(**cfg.attack.params)
    if cfg.defense is not None:
        build_defense(cfg.defense.name, cfg.defense.params)
    metrics = cfg.metrics or goal(attack.goal).default_metrics
    for name in metrics:
        METRICS.get(name)
    return attack, list(metrics)


def attack_targets(cfg: ExperimentConfig, attack: Attack, threat: ThreatModel, splits: Splits) -> tuple[Targets, torch.Tensor, torch.Tensor | None]:
    """What the attack inverts, the label each output should show, and the true inputs when they exist."""
    if attack.goal == "class":
        classes = torch.arange(splits.private_train.num_classes).repeat_interleave(cfg.per_class)
        return Targets(classes=classes), classes, None
    if attack.goal == "attribute":  # Fredrikson et al. 2014 attack the training cohort: records the model was fitted on
        sensitive = sensitive_of(splits.private_train)
        pick = torch.randperm(len(splits.private_train), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.num_targets]
        victims = splits.private_train.subset(pick)
        observations = threat.observer.intercept(victims.x) if threat.observer is not None else None
        return Targets(observations=observations, classes=victims.y, records=sensitive.hide(victims.x)), victims.y, victims.x
    if threat.observer is None:
        raise ModelinvError(f"attack '{cfg.attack.name}' reconstructs observed inputs: set access.observe")
    pick = torch.randperm(len(splits.private_test), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.num_targets]
    victims = splits.private_test.subset(pick)
    return Targets(observations=threat.observer.intercept(victims.x)), victims.y, victims.x


def run_experiment(cfg: ExperimentConfig, setting: Setting | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Run the configured attack; return the result row and the images (originals if known, reconstructions)."""
    attack, metric_names = check_names(cfg)
    if is_text(cfg):  # text targets (modelinv.text): their own data, oracle and trivial answers, on the CPU
        resolve_device(cfg.device)  # a device that is not here is still an error
        row, images = run_text_experiment(cfg, attack, metric_names)
        return {**row, "device": row.get("device", "cpu")}, images
    setting = setting or prepare(cfg)
    seed_everything(cfg.seed)
    splits = setting.splits
    threat, layer = build_threat(cfg, setting.target, setting.defense)
    targets, labels, truth = attack_targets(cfg, attack, threat, splits)
    attacker = attacker_dataset(cfg, splits)
    device = threat.device
    # the attacker's images go to the attack's device once; tables stay where the attribute attacks keep their records
    on_attack = replace(attacker, x=attacker.x.to(device), y=attacker.y.to(device)) if isinstance(attacker, ImageDataset) else attacker
    reconstruction = attack(threat, targets, on_attack, seed=cfg.seed)
    reconstruction.images = reconstruction.images.cpu()
    start = time.perf_counter()
    inputs = MetricInputs(
        reconstructions=reconstruction.images,
        labels=labels,
        truth=truth,
        evaluator=setting.evaluator,
        private=splits.private_train,
        holdout=splits.private_test,
        public=attacker,
        observations=targets.observations,
    )
    scores = compute(metric_names, inputs)
    baselines = {
        name: compute(metric_names, replace(inputs, reconstructions=images, labels=answer_labels, truth=inputs.truth if answer_labels is labels else None))
        for name, (images, answer_labels) in trivial_answers(attack.goal, inputs, cfg.seed).items()
    }
    for name, images in reconstruction.references.items():  # trivial answers only the attack can give (random GAN latents)
        baselines[name] = compute(metric_names, replace(inputs, reconstructions=images.cpu()))
    meta = dict(reconstruction.meta)
    row: dict[str, Any] = {
        "attack": cfg.attack.name,
        "goal": attack.goal,
        "model": cfg.target.arch,
        "layer": layer,
        "access": threat.describe(),
        **({"served_model": threat.observer.identity} if isinstance(threat.observer, RemoteOracle) else {}),
        **defense_columns(setting),
        "data": cfg.data.source,
        "split": cfg.data.split,
        "attacker_data": cfg.attacker_data,
        "seed": cfg.seed,
        "num_targets": len(labels),
        "target_test_acc": accuracy(setting.defense.deployed(setting.target) if setting.defense else setting.target, splits.private_test),
        "evaluator_test_acc": accuracy(setting.evaluator, splits.private_test) if setting.evaluator is not None else None,
        **scores,
        "baselines": baselines,
        "queries": meta.pop("queries"),
        "gradients": meta.pop("gradients"),
        "seconds": meta.pop("seconds"),
        "attack_details": meta,
        "timings": {**setting.timings, "metrics": time.perf_counter() - start},
        "data_hashes": splits.digests(),
        "checkpoints": {
            "target": setting.target_meta["path"],
            "evaluator": setting.evaluator_meta["path"] if setting.evaluator_meta is not None else None,
            "target_sha256": weights_sha256(setting.target_meta),
            "evaluator_sha256": weights_sha256(setting.evaluator_meta),
        },
        "versions": versions(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    images = {"reconstructions": reconstruction.images, "labels": labels}
    if truth is not None:
        images["originals"] = truth
    if setting.evaluator is not None and reconstruction.images.dim() == 4:  # the judge's class per output, for the report's captions
        images["judge_labels"] = run_evaluator(setting.evaluator, reconstruction.images).argmax(1)
    return row, images


def trivial_answers(goal: str, inputs: MetricInputs, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The trivial answers every image run is scored against with the attack's own metrics: (images, labels) by name.

    Reconstruction: a blank image and the attacker's mean image for every target, the attacker's mean image of
    each target's class (when its data has the class: what the label alone reveals), and the other targets' true
    inputs ("shuffled-truth": unrelated real images at the same n; the labels and true inputs are the attack's). Class inversion: a blank image, the attacker's mean image, the mean private
    training image of each class (an upper reference no attacker has), and real held-out private images
    of each class at the same number per class (the reference a perfect attack reaches: knn_ratio about 1).
    Attribute inference has its baselines among its metrics. Tables and images are not image-shaped: none.
    """
    recon, labels = inputs.reconstructions, inputs.labels
    if recon.dim() != 4 or goal == "attribute":
        return {}
    answers = {"blank": (torch.zeros_like(recon), labels), "mean-public": (inputs.public.x.mean(0).expand_as(recon).clone(), labels)}
    if goal != "class":
        public = inputs.public
        if public is not None and len(public) and all(bool((public.y == c).any()) for c in labels.unique().tolist()):
            # the label alone reveals about this much: the attacker's mean image of each target's true class
            means = {c: public.x[public.y == c].mean(0) for c in labels.unique().tolist()}
            answers["class-mean-public"] = (torch.stack([means[c] for c in labels.tolist()]), labels)
        if inputs.truth is not None and len(inputs.truth) >= 2:
            # Real images of the wrong person: the true inputs in an order that leaves none in its place (one
            # random cycle), the floor of every metric for unrelated real images at the same n (dcor about 0).
            order = torch.randperm(len(inputs.truth), generator=torch.Generator().manual_seed(seed))
            index = torch.empty_like(order)
            index[order] = order.roll(-1)
            answers["shuffled-truth"] = (inputs.truth[index], labels)
        return answers
    private, holdout = inputs.private, inputs.holdout
    answers["class-mean-private"] = (torch.stack([private.x[private.y == c].mean(0) for c in labels.tolist()]), labels)
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique().tolist():
        members = (holdout.y == c).nonzero().flatten()
        want = int((labels == c).sum())
        picks.append(members[torch.randperm(len(members), generator=gen)[:want]])
    pick = torch.cat(picks)
    if len(pick) >= 2:
        answers["held-out-private"] = (holdout.x[pick], holdout.y[pick])
    return answers


def defense_columns(setting: Setting) -> dict[str, Any]:
    """The result row's record of the defense: name, params, and what it reports of training (epsilon, delta)."""
    d = setting.defense
    if d is None:
        return {"defense": None, "defense_params": None}
    return {**d.describe(), **{k: setting.target_meta["metrics"][k] for k in d.reports}}


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written results file."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    os.replace(tmp, path)


def dump_config(path: Path, cfg: ExperimentConfig) -> None:
    """Write the full, validated config (defaults included) as YAML: rerunning it reproduces the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def write_run(out: Path, cfg: ExperimentConfig, row: dict[str, Any], images: dict[str, torch.Tensor]) -> None:
    """Write config.yaml, results.json, the PNG grid and the reconstructions of one run into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    dump_config(out / "config.yaml", cfg)
    if images["reconstructions"].dim() == 4:  # completed records (attribute inference) have no picture
        if "originals" in images:
            save_grid(out / "reconstructions.png", images["originals"], images["reconstructions"])
        else:
            save_class_grid(out / "reconstructions.png", images["reconstructions"], images["labels"])
    save_file({k: v.contiguous() for k, v in images.items()}, str(out / "reconstructions.safetensors"))
    write_json(out / "results.json", row)
