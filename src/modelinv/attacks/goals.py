"""What each attack goal measures, declared once: its default metrics, the metrics that say how far the
attack succeeded, and the one metric that ranks attacks and decides verdicts. Runner, audit, trade-off,
report and leaderboard all read this table.

- reconstruct: rebuild the specific private inputs behind observations (He et al. 2019). Headline SSIM
  (structure, not brightness: pixel distance alone rewards dark images); PSNR and judge top-1 beside it.
- class: produce inputs representative of private classes (Fredrikson et al. 2015, GMI). Headline
  knn_ratio (realism relative to real held-out images; judge accuracy alone rewards adversarial noise).
- attribute: complete private records whose sensitive column is hidden (Fredrikson et al. 2014).
  Headline the advantage over the most common value.
- bag-of-words: recover the set of content words of embedded texts (Song & Raghunathan, CCS 2020). Headline
  the mean per-text F1; the recall of sensitive words (names, diagnoses) beside it.
- text-attribute: infer a sensitive attribute of embedded texts among candidates (Song & Raghunathan, sec. 5).
  Headline the top-1 advantage over the attacker's most common value.
- memorization: exposure of canaries inserted in a language model's training text (Carlini et al., USENIX
  Security 2019). Headline the exposure (bits) of the canaries inserted most often.
- extraction: decode the inserted secrets themselves from their prefixes (Carlini et al., USENIX Security 2021).
  Headline the share of the canaries inserted most often extracted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelinv.errors import ModelinvError


@dataclass(frozen=True)
class Goal:
    name: str
    default_metrics: tuple[str, ...]
    success: tuple[str, ...]  # the metrics that measure attack success, headline first
    summary: str
    text: bool = False  # its attacks invert text targets (modelinv.text), not image or tabular models
    trivial: str = "mean-public"  # the stored baseline (a row's `baselines` key) its attacks are judged against

    @property
    def headline(self) -> str:
        return self.success[0]


GOALS: dict[str, Goal] = {
    g.name: g
    for g in (
        Goal(
            "reconstruct",
            ("mse", "psnr", "ssim", "attack_acc_top1", "attack_acc_top5", "knn_dist", "dcor", "dcor_observation"),
            ("ssim", "psnr", "attack_acc_top1"),
            "rebuild the private inputs behind observations",
        ),
        Goal(
            "class",
            ("attack_acc_top1", "attack_acc_top5", "knn_dist", "knn_ratio", "fid_eval"),
            ("knn_ratio", "attack_acc_top1", "fid_eval"),
            "produce inputs representative of private classes",
        ),
        Goal(
            "attribute",
            ("attr_acc", "attr_precision", "attr_recall", "attr_baseline_acc", "attr_ideal_acc", "attr_advantage"),
            ("attr_advantage", "attr_acc"),
            "infer a hidden sensitive column of private records",
        ),
        Goal(
            "bag-of-words",
            ("bow_precision", "bow_recall", "bow_f1", "bow_sensitive_recall"),
            ("bow_f1", "bow_sensitive_recall"),
            "recover the words of embedded texts",
            text=True,
            trivial="most-frequent-words",
        ),
        Goal(
            "text-attribute",
            ("cand_top1", "cand_top5", "cand_advantage"),
            ("cand_advantage", "cand_top1"),
            "infer a sensitive attribute of embedded texts among candidates",
            text=True,
            trivial="prior",
        ),
        Goal(
            "memorization",
            ("exposure", "exposure_inserted"),
            ("exposure", "exposure_inserted"),
            "measure how much a language model memorised inserted secrets",
            text=True,
            trivial="never-inserted",
        ),
        Goal(
            "extraction",
            ("extraction", "extraction_inserted"),
            ("extraction", "extraction_inserted"),
            "extract secrets inserted in a language model's training text",
            text=True,
            trivial="never-inserted",
        ),
    )
}


def goal(name: str) -> Goal:
    """The Goal called `name`; a one-line error for an unknown one."""
    if name not in GOALS:
        raise ModelinvError(f"unknown attack goal '{name}' (known: {', '.join(GOALS)})")
    return GOALS[name]
