"""Run one experiment on a text target (modelinv.text): the runner's branch for text, same config, same row.

The data are text sources (modelinv.data.text): the private texts are cut into training and test parts and the
attacker's (`same-distribution`: other people's records; `cross-domain`: `data.public_source`, e.g. pydocs). The
target (`target.arch` one of TEXT_TARGETS) is trained on the private training texts or loaded; its public
tokeniser turns the attacker's texts into queries. By goal:

- bag-of-words, text-attribute: the victims are `num_targets` private test texts; the attacker intercepts their
  sentence embeddings (access.observe: features) or, from a target that is a classifier (`text-encoder`), its
  scores (logits, probs or label), perturbed by an output defense if configured (noise on embeddings; rounding,
  top-k, label-only on scores). An attack whose parameters name a record `field` (name-recovery) guesses that
  name among the public candidate names (modelinv.data.text.candidate_names) instead of the texts' label;
- memorization, extraction: the targets are the target's canaries (inserted and never-inserted), the oracle its
  logits; extraction's success rate per repetition count is in `attack_details.extraction_by_repetitions`.

Defenses: an output defense wraps the oracle; a training defense (`dp-sgd`, the only one a language model takes)
trains `char-lm` through the one training loop (modelinv.text.lm.train_lm), keys its cache entry, and puts what it
reports (epsilon, delta, noise multiplier) in the row, as image runs do.

Every run is scored against trivial answers stored in the row's `baselines`: the attacker's most frequent words
(bag-of-words), the attacker's label prior (text-attribute; for names, how often each candidate name is in the attacker's
records), and the never-inserted canaries (memorization, extraction).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from typing import Any

import torch

from modelinv.attacks import ATTACKS, Attack, Targets
from modelinv.data import load
from modelinv.data.text import TextDataset, candidate_names, content_words, text_splits
from modelinv.data.types import Splits
from modelinv.defenses import Defense, OutputDefense, TrainingDefense, build_defense
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.metrics import MetricInputs, compute
from modelinv.observation import SCORES
from modelinv.oracle import Features, Scores, ThreatModel
from modelinv.seeding import seed_everything
from modelinv.text import TEXT_TARGETS, TextTarget, build_text_target
from modelinv.text.encoder import EMBEDDING
from modelinv.text.targets import load_text_target
from modelinv.versions import versions

TEXT_GOALS = ("bag-of-words", "text-attribute", "memorization", "extraction")
CANARY_GOALS = ("memorization", "extraction")
"""Goals whose targets are the canaries inserted in a language model's training text."""
LM_TRAINING_DEFENSES = ("dp-sgd",)
"""Training defenses a language model takes: DP-SGD changes only the optimiser and the batches; mid, bido and nopeek
act on a classifier's cut layer."""
EXAMPLES = 8
"""Attacked texts shown in the row (attack_details.examples): original beside what was recovered."""


def is_text(cfg: ExperimentConfig) -> bool:
    """Whether `cfg` runs on a text target."""
    return cfg.target.arch in TEXT_TARGETS


def observable(arch: str) -> tuple[str, ...]:
    """What text target `arch` can release (access.observe): its `releases`, and its classifier's scores for a target
    registered with `scores` (text-encoder: logits, probs, label of its classification head)."""
    info = TEXT_TARGETS.info(arch)
    return (info["releases"], *(SCORES if info.get("scores") else ()))


def text_defense(cfg: ExperimentConfig) -> Defense | None:
    """The configured defense: an output defense on what the attacker observes (the embedding for features), or a
    training defense of LM_TRAINING_DEFENSES for a target trained with one (char-lm); ModelinvError otherwise."""
    if cfg.defense is None:
        return None
    observed = cfg.access.observe
    defense = build_defense(cfg.defense.name, cfg.defense.params, EMBEDDING if observed == "features" else None)
    if isinstance(defense, TrainingDefense):
        if not TEXT_TARGETS.info(cfg.target.arch).get("training_defenses"):
            raise ModelinvError(f"defense '{cfg.defense.name}' changes training; text target '{cfg.target.arch}' takes output defenses only (training defenses: char-lm)")
        if cfg.defense.name not in LM_TRAINING_DEFENSES:
            raise ModelinvError(f"defense '{cfg.defense.name}' acts on a classifier's training; a language model takes {', '.join(LM_TRAINING_DEFENSES)}")
        if cfg.target.weights is not None:
            raise ModelinvError(f"defense '{cfg.defense.name}' changes how the target is trained; it cannot apply to given weights (target.weights)")
    elif observed in SCORES:
        defense.check_observation(observed)
    return defense


def check_text_config(cfg: ExperimentConfig, attack: Attack) -> None:
    """What a text run's config alone tells, checked before any data is loaded or model trained: the attack applies
    to text, the attacker's data, the split, the access (what the target releases, from TEXT_TARGETS) and the defense."""
    if attack.goal not in TEXT_GOALS:
        raise ModelinvError(f"attack '{cfg.attack.name}' ({attack.goal}) does not apply to text target '{cfg.target.arch}'; text attacks: goals {', '.join(TEXT_GOALS)}")
    if cfg.attacker_data != "public":
        raise ModelinvError(f"text attacks use the attacker's public texts: attacker_data must be 'public', not '{cfg.attacker_data}'")
    d = cfg.data
    if d.public_source is not None and d.split != "cross-domain":
        raise ModelinvError(f"data.public_source is only used by the cross-domain split, not '{d.split}'")
    if d.split == "class-disjoint":
        raise ModelinvError("text data is split same-distribution or cross-domain, not class-disjoint")
    if d.split == "cross-domain" and d.public_source is None:
        raise ModelinvError("the cross-domain split needs data.public_source, the attacker's texts (e.g. pydocs)")
    access, releases = cfg.access, TEXT_TARGETS.info(cfg.target.arch)["releases"]
    if access.white_box != "none" or access.endpoint is not None:
        raise ModelinvError("text targets are attacked through local observations only: set access.white_box to none, no endpoint")
    if attack.goal in CANARY_GOALS and releases != "logits":
        raise ModelinvError(f"attack '{cfg.attack.name}' measures canaries inserted in training: target '{cfg.target.arch}' has none (use char-lm)")
    check_observation(cfg, attack)
    text_defense(cfg)


def check_observation(cfg: ExperimentConfig, attack: Attack) -> None:
    """access.observe is something the target releases and the attack reads; AccessDenied naming both otherwise."""
    arch, observed, releases = cfg.target.arch, cfg.access.observe, TEXT_TARGETS.info(cfg.target.arch)["releases"]
    options = observable(arch)
    what = releases if len(options) == 1 else f"{releases} and its classifier's scores ({', '.join(options[1:])})"
    if observed not in options:
        raise AccessDenied(f"target '{arch}' releases {what}: set access.observe to {' or '.join(options)}, not {observed}")
    if attack.observes and observed not in attack.observes:
        usable = [o for o in options if o in attack.observes]
        raise AccessDenied(f"attack '{cfg.attack.name}' observes {' or '.join(sorted(attack.observes))}; target '{arch}' releases {what}: set access.observe to {' or '.join(usable) or 'what the attack observes (another target)'}, not {observed}")


def text_data(cfg: ExperimentConfig) -> Splits:
    """The run's private training / test texts and the attacker's, as `text_splits` cuts them with the run's seed."""
    d = cfg.data
    public = load(d.public_source) if d.public_source else None
    return text_splits(load(d.source), seed=cfg.seed, public=public, test_fraction=d.test_fraction, public_fraction=d.public_fraction)


def check_victims(cfg: ExperimentConfig, attack: Attack, splits: Splits) -> None:
    """The victims the attack needs exist: labels shared with the attacker's texts (text-attribute), names (name
    recovery), at least `num_targets` private test texts (embedding attacks)."""
    if attack.goal in CANARY_GOALS:
        return
    field = getattr(attack.params, "field", None) if attack.goal == "text-attribute" else None
    test = splits.private_test
    if field is not None and field not in test.attributes:
        raise ModelinvError(f"attack '{cfg.attack.name}' guesses the {field} of records: use records data")
    if attack.goal == "text-attribute" and field is None and splits.public.classes != test.classes:
        raise ModelinvError(f"attack '{cfg.attack.name}' needs attacker texts labelled like the private ones ({cfg.data.source}): use the same-distribution split")
    if cfg.num_targets > len(test):
        raise ModelinvError(
            f"num_targets {cfg.num_targets} is more than the {len(test)} private test texts of {cfg.data.source} ({cfg.data.split} split); set num_targets to at most {len(test)}"
        )


def check_text_run(cfg: ExperimentConfig) -> None:
    """Everything about a text run that its config and data tell, before any training (for a grid's up-front
    checks, as modelinv.experiment.preflight does for image and tabular runs): `check_text_config`, then the
    split and `check_victims`."""
    attack = ATTACKS.get(cfg.attack.name)(**cfg.attack.params)
    check_text_config(cfg, attack)
    check_victims(cfg, attack, text_data(cfg))


def text_threat(cfg: ExperimentConfig, target: TextTarget) -> ThreatModel:
    """The oracle over a text target: its sentence embeddings (Features), a classifier's scores or a language
    model's next-token logits (Scores), behind the configured output defense (the config checked by
    `check_text_config`)."""
    access, defense = cfg.access, text_defense(cfg)
    output = defense if isinstance(defense, OutputDefense) else None
    options = observable(cfg.target.arch)
    if access.observe not in options:
        raise AccessDenied(f"target '{cfg.target.arch}' releases {', '.join(options)}: set access.observe to {' or '.join(options)}, not {access.observe}")
    if access.observe == "features":
        return ThreatModel(observer=Features(target.model, access.layer or EMBEDDING, budget=access.query_budget, defense=output))
    return ThreatModel(observer=Scores(target.model, access.observe, budget=access.query_budget, defense=output))


def most_frequent_words(public: TextDataset) -> list[str]:
    """The k content words in most attacker texts, k = the mean number of content words of an attacker text."""
    bags = [content_words(t) for t in public.texts]
    counts = Counter(w for b in bags for w in b)
    k = round(sum(len(b) for b in bags) / max(len(bags), 1))
    return sorted(counts, key=lambda w: (-counts[w], w))[:k]


def word_matrices(predicted: list[list[str]], victims: TextDataset) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Indicator matrices over the union vocabulary: predicted (N, V) 0/1, truth (N, V) 0/1/2 (2: sensitive word)."""
    truths = [content_words(t) for t in victims.texts]
    vocab = sorted(set().union(*truths, *map(set, predicted)))
    index = {w: j for j, w in enumerate(vocab)}
    pred, truth = torch.zeros(len(truths), len(vocab)), torch.zeros(len(truths), len(vocab))
    for i, (words, true) in enumerate(zip(predicted, truths)):
        pred[i, [index[w] for w in words]] = 1.0
        truth[i, [index[w] for w in true]] = 1.0
        if victims.sensitive:
            truth[i, [index[w] for w in victims.sensitive[i] if w in index]] = 2.0
    return pred, truth, vocab


def run_text_experiment(cfg: ExperimentConfig, attack: Attack, metric_names: list[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Run the configured attack on a text target; return the result row and the tensors to store."""
    check_text_config(cfg, attack)
    d = cfg.data
    timings: dict[str, float] = {}
    start = time.perf_counter()
    splits = text_data(cfg)
    check_victims(cfg, attack, splits)
    timings["data"] = time.perf_counter() - start
    start = time.perf_counter()
    defense = text_defense(cfg)
    training = defense if isinstance(defense, TrainingDefense) else None
    if cfg.target.weights is not None:  # a given model (an audit's): loaded from its checkpoint, not trained
        target = load_text_target(cfg.target.arch, cfg.target.weights, splits.private_test)
    else:
        target = build_text_target(
            cfg.target.arch, cfg.target.args, cfg.target.train, splits.private_train, splits.private_test, cfg.seed,
            hooks=training, defense=training.training_spec() if training else None,
        )
    timings["target"] = time.perf_counter() - start
    seed_everything(cfg.seed)
    threat = text_threat(cfg, target)
    attacker = splits.public.tokenized(target.tokenizer)
    examples: list[dict[str, Any]] = []
    field = getattr(attack.params, "field", None) if attack.goal == "text-attribute" else None
    """The record attribute guessed among candidate names (name-recovery), None for the texts' labels."""
    if attack.goal in CANARY_GOALS:
        if not target.canaries:
            raise ModelinvError(f"attack '{cfg.attack.name}' measures canaries inserted in training: target '{cfg.target.arch}' has none (use char-lm)")
        labels = torch.tensor([c.repetitions for c in target.canaries])
        targets = Targets(records=target.tokenizer.encode([c.text for c in target.canaries]), classes=labels)
        victims = None
    else:
        pick = torch.randperm(len(splits.private_test), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.num_targets]
        victims = splits.private_test.subset(pick.sort().values).tokenized(target.tokenizer)
        labels = victims.y
        if field is not None:  # name recovery: the victims' names among the public candidate names
            candidates = candidate_names(field)
            labels = torch.tensor([candidates.index(name) for name in victims.attributes[field]])
        targets = Targets(observations=threat.observer.intercept(victims.x), classes=labels)
    reconstruction = attack(threat, targets, attacker, seed=cfg.seed)
    start = time.perf_counter()
    meta = dict(reconstruction.meta)
    answers: dict[str, MetricInputs] = {}
    if attack.goal == "bag-of-words":
        predicted = meta.pop("words")
        frequent = most_frequent_words(attacker)
        pred, truth, vocab = word_matrices([*predicted, *[frequent] * len(predicted)], victims.subset(torch.arange(len(victims)).repeat(2)))
        n = len(predicted)
        inputs = MetricInputs(reconstructions=pred[:n], labels=labels, truth=truth[:n], public=attacker)
        answers["most-frequent-words"] = MetricInputs(reconstructions=pred[n:], labels=labels, truth=truth[:n], public=attacker)
        examples = [{"original": t, "recovered": w, "sensitive": list(s)} for t, w, s in zip(victims.texts, predicted, victims.sensitive or [()] * n)][:EXAMPLES]
        stored = pred[:n]
    elif attack.goal == "text-attribute":
        public = attacker
        if field is None:
            names = victims.classes
            prior = torch.bincount(attacker.y, minlength=attacker.num_classes).float() / len(attacker)
        else:  # how often each candidate name is in the attacker's records, ties broken by the list's order
            names = candidate_names(field)
            counts = Counter(attacker.attributes[field])
            prior = torch.tensor([counts[n] for n in names], dtype=torch.float32) / len(attacker)
            public = replace(attacker, y=torch.tensor([names.index(n) for n in attacker.attributes[field]]))  # cand_advantage's prior: the names
        inputs = MetricInputs(reconstructions=reconstruction.images, labels=labels, public=public)
        answers["prior"] = MetricInputs(reconstructions=prior.expand(len(labels), -1).clone(), labels=labels, public=public)
        guesses = reconstruction.images.argmax(1).tolist()
        examples = [{"original": t, "true": names[y], "guessed": names[g]} for t, y, g in zip(victims.texts, labels.tolist(), guesses)][:EXAMPLES]
        stored = reconstruction.images
    elif attack.goal == "extraction":
        records = targets.records
        inputs = MetricInputs(reconstructions=reconstruction.images, labels=labels, truth=records)
        never = labels == 0
        if bool(never.any()):
            answers["never-inserted"] = MetricInputs(reconstructions=reconstruction.images[never], labels=labels[never], truth=records[never])
        meta["extraction_by_repetitions"] = {
            str(c): compute(["extraction"], MetricInputs(reconstructions=reconstruction.images[labels == c], labels=labels[labels == c], truth=records[labels == c]))["extraction"]
            for c in sorted(set(labels.tolist()))
        }
        examples = [{"canary": c.text, "secret": c.secret, "repetitions": c.repetitions, "extracted": g} for c, g in zip(target.canaries, meta.pop("guesses"))]
        stored = reconstruction.images
    else:
        inputs = MetricInputs(reconstructions=reconstruction.images, labels=labels)
        never = labels == 0
        if bool(never.any()):
            answers["never-inserted"] = MetricInputs(reconstructions=reconstruction.images[never], labels=labels[never])
        examples = [{"canary": c.text, "secret": c.secret, "repetitions": c.repetitions, "exposure": float(e)} for c, e in zip(target.canaries, reconstruction.images)]
        stored = reconstruction.images
    scores = compute(metric_names, inputs)
    baselines = {name: compute(metric_names, answer) for name, answer in answers.items()}
    row: dict[str, Any] = {
        "attack": cfg.attack.name,
        "goal": attack.goal,
        "model": cfg.target.arch,
        "layer": EMBEDDING if cfg.access.observe == "features" else None,
        "access": threat.describe(),
        **({"defense": None, "defense_params": None} if defense is None else defense.describe()),
        **({k: target.meta["metrics"][k] for k in training.reports} if training else {}),
        "data": d.source,
        "split": splits.kind,
        "attacker_data": cfg.attacker_data,
        "seed": cfg.seed,
        "num_targets": len(labels),
        "target_test_acc": target.meta["metrics"].get("test_acc"),
        "evaluator_test_acc": None,
        **scores,
        "baselines": baselines,
        "queries": meta.pop("queries"),
        "gradients": meta.pop("gradients"),
        "seconds": meta.pop("seconds"),
        "attack_details": {**meta, "examples": examples},
        "timings": {**timings, "metrics": time.perf_counter() - start},
        "data_hashes": splits.digests(),
        "checkpoints": {"target": target.meta["path"], "evaluator": None, "target_sha256": target.meta.get("sha256"), "evaluator_sha256": None},
        "target_train": target.meta.get("train"),
        "versions": versions(),
        "threads": torch.get_num_threads(),
        "device": "cpu",
    }
    images = {"reconstructions": stored.float().contiguous(), "labels": labels}
    if attack.goal == "bag-of-words":
        images["truth"] = truth[: len(labels)]
    elif attack.goal == "extraction":
        images["truth"] = targets.records.float()
    return row, images
