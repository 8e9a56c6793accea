"""Attack accuracy: does an independent evaluation classifier recognise the class of a reconstruction?"""

from __future__ import annotations

from modelinv.metrics.base import Metric, MetricInputs, register, run_evaluator


class AttackAccuracy(Metric):
    """Fraction of reconstructions whose label is among the evaluator's top-k classes (GMI, Zhang et al., CVPR 2020).

    acc@k = (1 / N) sum_i 1[y_i in top-k of evaluator(x_hat_i)]. The evaluator is a classifier trained apart
    from the target, so that an attack is not judged by the model it attacked. With k >= the number of
    classes every label is in the top k, so the score says nothing: it is None (shown "n/a"), e.g. top-5 on
    the 5 private digits of the class-disjoint split.

    Shape: reconstructions (N, ...) and labels (N,), evaluator logits (N, K) -> a float in [0, 1], or None if k >= K.
    Example: compute(["attack_acc_top1"], MetricInputs(x_hat, labels, evaluator=judge)) -> {"attack_acc_top1": 0.8}.
    """

    needs = frozenset({"evaluator"})
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __init__(self, k: int):
        self.k = k
        self.name = f"attack_acc_top{k}"

    @property
    def summary(self) -> str:
        return f"Fraction of reconstructions whose label is among the evaluator's top-{self.k} classes (n/a with {self.k} classes or fewer)"

    def evaluate(self, inputs: MetricInputs) -> float | None:
        logits = run_evaluator(inputs.evaluator, inputs.reconstructions)
        if self.k >= logits.shape[1]:
            return None
        top = logits.topk(self.k, dim=1).indices
        return (top == inputs.labels.view(-1, 1).to(top.device)).any(dim=1).double().mean().item()


register(AttackAccuracy(k=1))
register(AttackAccuracy(k=5))
