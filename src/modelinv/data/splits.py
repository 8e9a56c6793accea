"""Threat-model splits: what the victim trains on (private), what the attacker holds (public), what the judge learns.

Every split is drawn from a torch.Generator seeded with `seed` (same seed, same split) and stratified: each class
keeps its share in every part. The private data is cut into a test part (`test_fraction`) and a training pool;
for images the training pool is cut again, into the target's training data and, disjoint from it, the
evaluation classifier's (`evaluator_fraction` of the pool): the judge of an attack never saw the images the
target was trained on, so it cannot reward an inversion for recalling them. Tabular data keeps one training
set (attribute attacks use no judge; a configured one learns from the target's training records).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from modelinv.data.transforms import resize, to_channels
from modelinv.data.types import Dataset, Splits, TabularDataset
from modelinv.errors import ModelinvError
from modelinv.registry import Registry

SPLITS: Registry = Registry("split")
"""Each split is `fn(data, generator, **arguments named in its "uses" info) -> (private, public)`."""

EVALUATOR_FRACTION = 0.5
"""Default share of the private training pool that trains the evaluation classifier (images only)."""


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ModelinvError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def _stratified(data: Dataset, fraction: float, argument: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices (rest, part): a random `fraction` of every class in `part` (at least one sample, never all)."""
    rest, part = [], []
    for c, name in enumerate(data.classes):
        members = (data.y == c).nonzero().flatten()
        n = len(members)
        if n < 2:
            raise ModelinvError(f"class '{name}' of {data.name} has {n} sample(s); splitting it by {argument} needs at least 2")
        members = members[torch.randperm(n, generator=generator)]
        k = min(max(round(fraction * n), 1), n - 1)
        part.append(members[:k])
        rest.append(members[k:])
    return torch.cat(rest).sort().values, torch.cat(part).sort().values


def _keep_classes(data: Dataset, keep: list[int], name: str) -> Dataset:
    """The samples of classes `keep`, relabelled 0..len(keep)-1 in that order, keeping the class names."""
    relabel = torch.full((data.num_classes,), -1, dtype=torch.int64)
    relabel[keep] = torch.arange(len(keep))
    mask = relabel[data.y] >= 0
    return replace(data.subset(mask), y=relabel[data.y[mask]], classes=tuple(data.classes[c] for c in keep), name=name)


@SPLITS.register("same-distribution", uses=("public_fraction",))
def same_distribution(data: Dataset, generator: torch.Generator, public_fraction: float) -> tuple[Dataset, Dataset]:
    """Attacker data from the victim's distribution (He et al., ACSAC 2019): a stratified public_fraction, disjoint from the private data."""
    _check_fraction("public_fraction", public_fraction)
    private, public = _stratified(data, public_fraction, "public_fraction", generator)
    return data.subset(private), data.subset(public, f"{data.name}/public")


@SPLITS.register("class-disjoint", uses=("private_classes",))
def class_disjoint(data: Dataset, generator: torch.Generator, private_classes: list[int] | None) -> tuple[Dataset, Dataset]:
    """Private and public classes disjoint, the GMI protocol (Zhang et al., CVPR 2020): by default the first half private.

    Both parts are relabelled 0..k-1 (sorted), keeping the original class names; MNIST gives private "0".."4".
    """
    n = data.num_classes
    if n < 2:
        raise ModelinvError(f"the class-disjoint split needs at least 2 classes; {data.name} has {n}")
    chosen = list(range(n // 2)) if private_classes is None else list(private_classes)
    bad = [c for c in chosen if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n]
    if bad:
        raise ModelinvError(f"private_classes: {bad[0]!r} is not a class index of {data.name} (0..{n - 1})")
    if len(set(chosen)) != len(chosen) or not 0 < len(chosen) < n:
        raise ModelinvError(f"private_classes must be distinct class indices leaving at least one public class, got {chosen}")
    chosen = sorted(chosen)
    public = [c for c in range(n) if c not in chosen]
    return _keep_classes(data, chosen, data.name), _keep_classes(data, public, f"{data.name}/public")


@SPLITS.register("cross-domain", uses=("public_data",))
def cross_domain(data: Dataset, generator: torch.Generator, public_data: Dataset | None) -> tuple[Dataset, Dataset]:
    """Attacker data from another distribution (e.g. MNIST private, scikit-learn digits public), converted to the private input shape."""
    if public_data is None:
        raise ModelinvError("the cross-domain split needs public_data, the attacker's dataset (data.public_source in a config)")
    kinds = {2: "tabular", 4: "image"}
    private_kind, public_kind = kinds.get(data.x.dim(), "other"), kinds.get(public_data.x.dim(), "other")
    if private_kind != public_kind:
        raise ModelinvError(f"public_data {public_data.name} is {public_kind} data but the private {data.name} is {private_kind}")
    if private_kind == "image":
        channels, height, width = data.input_shape
        x = resize(to_channels(public_data.x, channels), (height, width))
    else:
        if public_data.input_shape != data.input_shape:
            raise ModelinvError(
                f"public_data {public_data.name} has {public_data.input_shape[0]} features but the private {data.name} has {data.input_shape[0]}"
            )
        both_named = isinstance(data, TabularDataset) and isinstance(public_data, TabularDataset)
        if both_named and data.columns != public_data.columns:
            raise ModelinvError(
                f"public_data {public_data.name} has columns ({', '.join(public_data.columns)}) but the private {data.name} has ({', '.join(data.columns)})"
            )
        x = public_data.x
    return data, replace(public_data, x=x, name=f"{public_data.name}/public")


def make_splits(
    kind: str,
    data: Dataset,
    *,
    seed: int,
    public_data: Dataset | None = None,
    test_fraction: float = 0.2,
    public_fraction: float = 0.3,
    private_classes: list[int] | None = None,
    evaluator_fraction: float = EVALUATOR_FRACTION,
    judge_classes: str = "private",
) -> Splits:
    """Split `data` by the threat model `kind` into private train/test, public (attacker) and evaluator data.

    The private test part is drawn first (the same as before the evaluator had its own part); for images a
    stratified `evaluator_fraction` of the rest is the judge's training data and the remainder the target's.
    With `judge_classes="all"` (class-disjoint split only) a stratified `evaluator_fraction` of the public pool
    is also held out from the attacker and joins the judge's data as classes K..K+P-1 after the K private ones:
    the judge then tells every class apart (chance 1/(K+P)), so an inversion that looks like a public class
    counts as wrong rather than as the nearest private one."""
    split = SPLITS.get(kind)
    uses = SPLITS.info(kind)["uses"]
    given = {"public_data": public_data, "public_fraction": public_fraction, "private_classes": private_classes}
    for argument in ("public_data", "private_classes"):
        if given[argument] is not None and argument not in uses:
            raise ModelinvError(f"{argument} is not used by the '{kind}' split")
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("evaluator_fraction", evaluator_fraction)
    if judge_classes not in ("private", "all"):
        raise ModelinvError(f"data.judge_classes must be 'private' or 'all', got {judge_classes!r}")
    if judge_classes == "all" and kind != "class-disjoint":
        raise ModelinvError(f"data.judge_classes 'all' needs the class-disjoint split (its public classes are the judge's others), not '{kind}'")
    generator = torch.Generator().manual_seed(seed)
    private, public = split(data, generator, **{argument: given[argument] for argument in uses})
    train, test = _stratified(private, test_fraction, "test_fraction", generator)
    private_test = private.subset(test, f"{data.name}/private-test")
    if isinstance(private, TabularDataset):
        if judge_classes == "all":
            raise ModelinvError(f"data.judge_classes 'all' applies to images; {data.name} is a table")
        private_train = evaluator_train = private.subset(train, f"{data.name}/private-train")
    else:
        pool = private.subset(train)
        target_part, judge_part = _stratified(pool, evaluator_fraction, "evaluator_fraction", generator)
        private_train = pool.subset(target_part, f"{data.name}/private-train")
        evaluator_train = pool.subset(judge_part, f"{data.name}/evaluator-train")
        if judge_classes == "all":  # drawn after the default parts, which therefore stay the same
            attacker_part, held_out = _stratified(public, evaluator_fraction, "evaluator_fraction", generator)
            held = public.subset(held_out)
            public = public.subset(attacker_part)
            k = evaluator_train.num_classes
            evaluator_train = replace(evaluator_train, x=torch.cat([evaluator_train.x, held.x]), y=torch.cat([evaluator_train.y, held.y + k]),
                                      classes=(*evaluator_train.classes, *held.classes), name=f"{data.name}/evaluator-train-all-classes")
    return Splits(kind=kind, private_train=private_train, private_test=private_test, public=public, evaluator_train=evaluator_train)
