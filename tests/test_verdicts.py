"""Verdicts follow the numbers: one rule (any success metric beats the trivial answer by its margin) for every goal."""

from modelinv.report.audit import margins_beaten, metrics_beaten, verdict


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


def test_the_verdict_states_the_budget_and_says_when_it_was_reduced():
    quiet = row(psnr=12.3, ssim=0.47, attack_acc_top1=0.1, queries=6400, gradients=0, config={"attack": {"params": {"epochs": 8}}})
    (line,) = verdict([quiet], "probs")
    assert "Attack budget: epochs 8 (default 40: reduced), 6,400 queries to the model." in line
    assert "a full-strength attack may leak more, so this is no evidence of safety" in line
    full = row(psnr=12.3, ssim=0.47, attack_acc_top1=0.1, queries=6400, config={"attack": {"params": {}}})
    (line,) = verdict([full], "probs")
    assert "Attack budget: epochs 40, 6,400 queries to the model." in line and "reduced" not in line


def test_rmle_budget_comes_from_what_the_attack_reported():
    run = {**row(psnr=30.0, ssim=0.9, attack_acc_top1=0.9), "attack": "rmle", "attack_details": {"iterations": 500, "lr": 0.01}, "gradients": 32000}
    (line,) = verdict([run], "features(conv1) + white-box client")
    assert "Attack budget: iterations 500, 32,000 gradient evaluations." in line
    # a run that reports the cut's schedule is flagged when it used fewer iterations
    short = {**run, "attack_details": {"iterations": 10, "lr": 0.01, "defaults": {"iterations": 500, "lr": 0.01, "tv_weight": 0.0}}}
    (line,) = verdict([short], "features(conv1) + white-box client")
    assert "Attack budget: iterations 10 (default 500: reduced)" in line


def test_with_seeds_leakage_needs_intervals_that_do_not_overlap_the_trivial_answer():
    # the mean beats the trivial answer by more than the 20-point margin, but the seeds disagree wildly
    noisy = [row(psnr=12.2, ssim=0.46, attack_acc_top1=a, seed=s) for s, a in enumerate((0.05, 0.9, 0.1))]
    assert margins_beaten(noisy[1]) == ["attack_acc_top1"] and metrics_beaten(noisy) == []
    (line,) = verdict(noisy, "probs")
    assert line.startswith("No input leakage measured") and "Over 3 seeds" in line
    steady = [row(psnr=12.2, ssim=0.46, attack_acc_top1=a, seed=s) for s, a in enumerate((0.9, 0.92, 0.94))]
    assert metrics_beaten(steady) == ["attack_acc_top1"]
    (line,) = verdict(steady, "probs")
    assert line.startswith("Inputs can be reconstructed") and "92% [" in line


def test_text_goals_are_judged_against_their_own_trivial_answer():
    words = {"goal": "bag-of-words", "attack": "bow-inversion", "access": "features(embedding)", "attack_details": {},
             "bow_f1": 0.42, "bow_sensitive_recall": 0.3, "baselines": {"most-frequent-words": {"bow_f1": 0.12, "bow_sensitive_recall": 0.0}}}
    assert margins_beaten(words) == ["bow_f1", "bow_sensitive_recall"]
    (line,) = verdict([words], "features")
    assert line.startswith("Leakage measured") and "bow_f1 0.42 (trivial answer 0.12)" in line


def test_extracted_secrets_are_leakage_and_every_text_success_metric_has_a_margin():
    from modelinv.attacks.goals import GOALS
    from modelinv.report.audit import MARGINS

    base = {"goal": "extraction", "attack": "extraction", "access": "logits", "attack_details": {}}
    leaky = {**base, "extraction": 1.0, "extraction_inserted": 0.5, "baselines": {"never-inserted": {"extraction": 0.0, "extraction_inserted": 0.0}}}
    assert margins_beaten(leaky) == ["extraction"]
    quiet = {**leaky, "extraction": 0.05}
    assert margins_beaten(quiet) == []
    for g in GOALS.values():  # a success metric without a margin could never be called leakage
        assert any(MARGINS.get(m) for m in g.success), g.name
