"""Verdicts follow the numbers: one rule (any success metric beats the trivial answer by its margin) for every goal."""

from modelinv.report.audit import margins_beaten, verdict


def row(**metrics):
    base = {"goal": "reconstruct", "attack": "inverse-net", "access": "probs", "attack_details": {}}
    trivial = {"psnr": 12.1, "ssim": 0.45, "attack_acc_top1": 0.08}
    return {**base, **metrics, "baselines": {"mean-public": trivial}}


def test_recognised_reconstructions_are_leakage_even_when_psnr_is_near_the_trivial_answer():
    # the combination an earlier audit called "little input leakage": PSNR 12.9 vs 12.1, 94% recognised vs 8%
    leaky = row(psnr=12.9, ssim=0.52, attack_acc_top1=0.94)
    assert margins_beaten(leaky) == ["attack_acc_top1"]
    (line,) = verdict([leaky], "probs")
    assert line.startswith("Inputs can be reconstructed") and "attack_acc_top1" in line


def test_an_attack_no_better_than_the_trivial_answer_is_not_called_leakage():
    (line,) = verdict([row(psnr=12.3, ssim=0.47, attack_acc_top1=0.1)], "probs")
    assert line.startswith("No input leakage measured")


def test_class_inversion_is_judged_by_knn_ratio_and_accuracy_against_its_trivial_answer():
    base = {"goal": "class", "attack": "gmi", "access": None, "attack_details": {}}
    trivial = {"knn_ratio": 6.2, "attack_acc_top1": 0.04}
    realistic = {**base, "knn_ratio": 2.0, "attack_acc_top1": 0.1, "baselines": {"mean-public": trivial}}
    assert margins_beaten(realistic) == ["knn_ratio"]
    noise = {**base, "knn_ratio": 8.0, "attack_acc_top1": 0.05, "baselines": {"mean-public": trivial}}
    assert margins_beaten(noise) == []
