"""benchmarks/defenses.py's data-volume study: its rows train on the sizes it names, and the DP-SGD gap notes say
what the measured sizes account for, decided on the intervals (synthetic stored rows)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import defenses as bench  # noqa: E402

from modelinv.report.aggregate import interval  # noqa: E402

STUDIES = {s.name: s for s in bench.studies("mnist5k", 20)}


def rows_of(study: bench.Study, accuracies: dict[tuple[float | None, int], tuple[float, ...]]) -> tuple[list[dict], dict]:
    """Stored rows of `study` with the given target accuracies per (epsilon, volume index), and the run-id keys."""
    rows, keys = [], {}
    for index, setting in enumerate(study.defenses):
        volume = bench.VOLUMES.index(setting.data)
        for seed, acc in enumerate(accuracies.get((setting.params.get("target_epsilon"), volume), ())):
            cfg = bench.config(study, "mi-face", setting, seed, quick=False)
            run = f"{index}-{seed}"
            keys[run] = (index, "mi-face")
            rows.append({"run_id": run, "config": cfg.model_dump(mode="json"), "seed": seed, "target_test_acc": acc})
    return rows, keys


def test_volume_rows_train_on_fewer_and_more_images_than_the_default():
    study = STUDIES["dp-sgd-volume"]
    rows, _ = rows_of(study, {(None, v): (0.9,) for v in range(len(bench.VOLUMES))})
    sizes = [bench.train_images(r) for r in rows]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    default = bench.config(STUDIES["dp-sgd"], "mi-face", STUDIES["dp-sgd"].defenses[1], 0, quick=False)
    assert sizes[1] == bench.train_images({"config": default.model_dump(mode="json")}) == 1400
    assert bench.config(study, "mi-face", study.defenses[0], 0, quick=False).data.evaluator_fraction == 0.75


def test_dp_sgd_gap_cites_the_sizes_measured_and_keeps_the_unmeasured_rest_unexplained():
    study = STUDIES["dp-sgd-volume"]
    acc = {(2.91, 0): (0.50, 0.52, 0.48), (2.91, 1): (0.65, 0.66, 0.64), (2.91, 2): (0.85, 0.86, 0.84), (None, 1): (0.95, 0.96, 0.94)}
    rows, keys = rows_of(study, acc)
    sizes = bench.by_volume(study, bench.settings_of(rows, keys))
    assert [n for n, _ in sizes[2.91]] == [700, 1400, 3610]
    text = bench.volume_explains(sizes[2.91], 96.78, 1400)
    assert text.startswith("data volume measured (dp-sgd-volume study): accuracy 50 [45, 55] at 700 images, 65 [62.5, 67.5] at 1,400")
    assert "at 3,610 images the gap is -11.78 points: the size accounts for 20.00 of the 31.78 points measured at 1,400 images" in text
    assert text.endswith("the remaining 11.78 (from 3,610 images to Opacus's 60,000, not measured offline) are unexplained.")
    note = "\n".join(bench.volume_note(sizes))
    assert "- epsilon 2.91: 50 [45, 55] at 700 images, 65 [62.5, 67.5] at 1,400 images, 85 [82.5, 87.5] at 3,610 images" in note
    assert "(1,400 against 700 images: better; 3,610 against 1,400 images: better)" in note
    assert "(points): 30.00 at 1,400 (Opacus: 2.16)" in note


def test_volume_decides_on_intervals_explained_when_close_unexplained_when_not_distinguishable():
    base = (1400, interval([80.0, 79.0, 81.0]))
    close = [base, (3610, interval([94.0, 95.0, 96.0]))]
    assert bench.volume_explains(close, 96.78, 1400).endswith("within 5: explained by the training set's size.")
    overlapping = [base, (3610, interval([85.0, 75.0, 95.0]))]
    assert bench.volume_explains(overlapping, 96.78, 1400).endswith(
        "3,610 images are not distinguishable from 1,400: the size does not account for it: unexplained.")
    assert bench.volume_explains([base], 96.78, 1400).endswith("the larger set is not run yet: unexplained.")


def test_study_rows_are_settings_and_default_rows_have_no_data_overrides():
    for study in STUDIES.values():
        assert all(isinstance(s, bench.Setting) for s in study.defenses)
        if study.name != "dp-sgd-volume":
            assert all(s.data is None for s in study.defenses)
    assert {tuple(s.data) for s in STUDIES["dp-sgd-volume"].defenses} == {("evaluator_fraction",), (), ("public_fraction", "evaluator_fraction")}


def test_class_study_says_which_setting_measurably_weakens_each_attack_and_at_what_accuracy():
    study = STUDIES["class"]

    def rows(acc: float, top1: float, knn: float) -> list[dict]:
        return [{"target_test_acc": acc + d, "attack_acc_top1": top1 + d, "knn_ratio": knn + 10 * d} for d in (-0.01, 0.0, 0.01)]

    by_setting = {(0, a): rows(0.98, 0.9, 2.0) for a in study.attacks}
    by_setting.update({(1, a): rows(0.98, 0.9, 2.1) for a in study.attacks})  # mid beta=0.01: within the intervals
    by_setting.update({(3, a): rows(0.35, 0.3, 6.0) for a in study.attacks})  # mid beta=1.0: apart
    by_setting[(3, "gmi")] = rows(0.35, 0.9, 2.0)  # ... except gmi
    text = "\n".join(bench.defense_effect(study, by_setting))
    assert "- mid beta=0.01: target acc 0.98 [0.955, 1] (undefended 0.98 [0.955, 1]: not distinguishable); mi-face: attack acc 0.9" in text
    assert "mi-face: attack acc 0.3 [0.275, 0.325] (lower), knn_ratio 6 [5.75, 6.25] (higher)" in text
    assert "- mi-face is measurably weakened (attack acc lower or knn_ratio higher, intervals apart) by: mid beta=1.0 (target acc 0.35 [0.325, 0.375])." in text
    assert "- gmi is measurably weakened (attack acc lower or knn_ratio higher, intervals apart) by: no setting." in text
