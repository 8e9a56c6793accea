"""Attack accuracy: does an independent evaluation classifier recognise the class of a reconstruction?"""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator


class AttackAccuracy(Metric):
    """Fraction of reconstructions whose label is among the evaluator's top-k classes (GMI, Zhang et al. 2020).

    The evaluator is a classifier trained apart from the target, so that an attack is not judged by the
    model it attacked. With fewer than k classes, k is clamped to the number of classes.
    """

    needs = frozenset({"evaluator"})
    higher_is_better = True

    def __init__(self, k: int):
        self.k = k
        self.name = f"attack_acc_top{k}"

    @property
    def summary(self) -> str:
        return f"Fraction of reconstructions whose label is among the evaluator's top-{self.k} classes"

    def evaluate(self, inputs: MetricInputs) -> float:
        logits = run_evaluator(inputs.evaluator, inputs.reconstructions)
        top = logits.topk(min(self.k, logits.shape[1]), dim=1).indices
        return (top == inputs.labels.view(-1, 1).to(top.device)).any(dim=1).double().mean().item()


register(AttackAccuracy(k=1))
register(AttackAccuracy(k=5))
