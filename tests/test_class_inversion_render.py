"""benchmarks/class_inversion.py's tables from synthetic stored rows: the random-latents calibration once per GAN,
and the glyphs-explain verdicts with the check that every seed's rows attacked the same target."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import class_inversion as bench  # noqa: E402

from modelinv.report.benchmark import Run  # noqa: E402


def row(label: str, seed: int, knn: float, target: str = "t", gan: str = "dcgan-generator-a") -> dict:
    attack, params = bench.ROWS[label]
    metrics = {"knn_ratio": knn, "fid_eval": 100.0 * knn, "attack_acc_top1": 0.5, "attack_acc_top5": 0.9, "knn_dist": 10.0 * knn}
    return {
        "run_id": f"{label}-{seed}", "attack": attack, "config": {"attack": {"name": attack, "params": params}}, "seed": seed,
        "num_targets": 520, "threads": 1, "target_test_acc": 0.97, "evaluator_test_acc": 0.98, "gradients": 0, "queries": 0, "seconds": 1.0,
        "timings": {}, "versions": {"cpu": "x86_64 AVX512"}, **metrics,
        "baselines": {"blank": dict(metrics, knn_ratio=8.0 + seed), "random-latents": dict(metrics, knn_ratio=6.0 + 0.1 * seed)},
        "checkpoints": {"target_sha256": f"{target}{seed}", "evaluator_sha256": f"e{seed}"},
        "attack_details": {"gan": {"path": f"/cache/models/{gan}{seed}"}},
    }


def test_explain_table_states_each_variant_against_both_ends_and_whether_the_targets_are_shared():
    knn = {"gmi": (2.5, 2.45, 2.55), "mirror-bb": (1.9, 2.0, 1.8), "mirror-bb (selection, 1 generation)": (1.95, 1.85, 2.05),
           "mirror-bb (no selection)": (2.5, 2.6, 2.4), "gmi (100 steps)": (2.5, 2.2, 2.0)}
    rows = [row(label, seed, v) for label, values in knn.items() for seed, v in enumerate(values)]
    rows[-1]["checkpoints"]["target_sha256"] = "other"  # seed 2 of one row attacked another target
    for r in rows:
        r["diversity_ratio"] = 0.1 if r["attack"] == "mirror-bb" else 0.6
    text = bench.render("glyphs-explain", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert "### Where 'mirror-bb above gmi' comes from" in text
    assert "- mirror-bb (selection, 1 generation): knn_ratio 1.95 [1.7, 2.2]: better than gmi; not distinguishable from mirror-bb (diversity_ratio 0.1 [0.1, 0.1])." in text
    assert "- mirror-bb (no selection): knn_ratio 2.5 [2.25, 2.75]: not distinguishable from gmi; worse than mirror-bb (diversity_ratio 0.1 [0.1, 0.1])." in text
    assert "not distinguishable from gmi; not distinguishable from mirror-bb" in text  # gmi (100 steps): wide interval
    assert "the same target weights and were judged by the same judge: 2 of 3." in text
    assert "- Within-class variety (diversity_ratio; real held-out images: 1): mirror-bb's inversions 0.1 [0.1, 0.1] are less varied than gmi's 0.6 [0.6, 0.6]." in text
    assert text.count("calibration: random latents of the attack's GAN (gmi, mirror-bb, mirror-bb (selection, 1 generation), mirror-bb (no selection), gmi (100 steps))") == 1


def test_random_latents_are_shown_once_per_gan_under_every_row_that_shares_it():
    rows = [row("gmi", s, 2.5) for s in range(3)] + [row("mirror-bb", s, 1.9) for s in range(3)] + [row("kedmi", s, 2.0, gan="kedmi-gan-") for s in range(3)]
    text = bench.render("glyphs", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    latents = [line for line in text.splitlines() if "random latents" in line and line.startswith("|")]
    assert [line.split("|")[1].strip() for line in latents] == [
        "calibration: random latents of the attack's GAN (gmi, mirror-bb)", "calibration: random latents of the attack's GAN (kedmi)"]
    assert all(line.split("|")[4].strip() == "6.1 [5.85, 6.35]" for line in latents)  # one value per seed, not one per row
    assert "white-box GMI above black-box Mirror: **reversed**" in text and "(where it comes from: protocol `glyphs-explain`)" in text


def test_each_reversal_points_to_the_protocol_that_tests_it_and_that_protocol_reruns_both_attacks():
    rows = [row("gmi", s, 2.5 + 0.01 * s) for s in range(3)] + [row("kedmi", s, 3.5 + 0.01 * s, gan="kedmi-gan-") for s in range(3)]
    text = bench.render("glyphs", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert "- KEDMI >= GMI (Chen et al. 2021): **reversed** (knn_ratio 3.51 [3.49, 3.53] vs 2.51 [2.49, 2.53]) (where it comes from: protocol `glyphs-explain-kedmi`)" in text
    assert bench.PROTOCOLS["glyphs-explain-kedmi"]["rows"] == ["kedmi", "gmi", "kedmi (distribution means)", "gmi (KEDMI's GAN)", "kedmi (GMI's GAN)", "rlb-mi"]
    assert bench.PROTOCOLS["glyphs-explain"]["rows"] == ["gmi", "mirror-bb", "mirror-bb (selection, 1 generation)", "mirror-bb (no selection)", "gmi (100 steps)"]
    explained = bench.render("glyphs-explain-kedmi", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert "(where it comes from" not in explained  # the explain protocol states the reversal, it does not point to itself


@pytest.mark.parametrize("label", bench.EXPLAIN_ROWS)
def test_every_explain_row_is_a_valid_config_of_its_attack(label):
    protocol = next(where for where, labels in bench.EXPLAIN.values() if label in labels)
    cfg = bench.config(protocol, label, 0, 20)
    assert cfg.attack.params == bench.ROWS[label][1] and bench.label_of({"attack": cfg.attack.name, "config": cfg.model_dump()}) == label


def test_a_partial_explain_protocol_says_what_is_missing_and_compares_with_what_is_there():
    rows = [row("kedmi", s, 3.5 + 0.1 * s, gan="kedmi-gan-") for s in range(3)] + [row("kedmi (distribution means)", s, 3.4 + 0.1 * s, gan="kedmi-gan-") for s in range(3)]
    for r in rows:
        r["diversity_ratio"] = 0.0 if r["config"]["attack"]["params"] else 0.4
    text = bench.render("glyphs-explain-kedmi", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert ("**Partial: gmi, gmi (KEDMI's GAN), kedmi (GMI's GAN) not run yet in this protocol; `python benchmarks/class_inversion.py --protocol glyphs-explain-kedmi` "
            "resumes it. The rows that test the reversal are compared with kedmi only.**") in text
    assert "**Partial: rlb-mi, kedmi (GMI's GAN) not run yet" in text
    assert "- kedmi (distribution means): knn_ratio 3.5 [3.25, 3.75]: not distinguishable from kedmi (diversity_ratio 0 [0, 0])." in text
    assert "Within-class variety" not in text  # needs both ends of the ordering
    assert "### The literature's orderings\n\n- KEDMI >= GMI (Chen et al. 2021): not run yet (gmi; " in text  # said, not an empty heading


def test_rows_and_orderings_not_run_yet_are_said_not_dropped():
    rows = [row("gmi", s, 2.5 + 0.01 * s) for s in range(3)] + [row("kedmi", s, 3.5 + 0.01 * s, gan="kedmi-gan-") for s in range(3)]
    text = bench.render("glyphs", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    missing = [label for label in bench.PROTOCOLS["glyphs"]["rows"] if label not in ("gmi", "kedmi")]
    assert f"**Not run yet in this protocol: {', '.join(missing)}; `python benchmarks/class_inversion.py --protocol glyphs` resumes it.**" in text
    assert "- LOMMA improves GMI (Nguyen et al. 2023): not run yet (gmi+lomma; `python benchmarks/class_inversion.py --protocol glyphs` resumes it)." in text
    assert "- GMI > MI-Face (Zhang et al. 2020): not run yet (mi-face;" in text
    budget = bench.render("glyphs-budget", [row("gmi", s, 2.5) for s in range(3)], [Run(rows, None, 0.0, {}, {}, [])], 2)
    assert "- gmi vs gmi (published budget): not run yet (gmi (published budget); `python benchmarks/class_inversion.py --protocol glyphs-budget` resumes it)." in budget
    assert "- brep-mi vs brep-mi (modelinv default): not run yet (brep-mi, brep-mi (modelinv default);" in budget


def test_the_markdown_has_every_protocol_and_says_which_are_not_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["class_inversion.py", "--render", "--out", str(tmp_path / "class_inversion")])
    bench.main()
    text = (tmp_path / "class_inversion.md").read_text()
    assert set(bench.SHOWN) == set(bench.PROTOCOLS)
    for protocol in bench.SHOWN:
        assert f"## Protocol `{protocol}`\n\nNot run yet: `python benchmarks/class_inversion.py --protocol {protocol}` computes it (resumable)." in text


def test_random_latents_of_a_seed_with_two_gans_of_a_family_count_once_per_seed():
    """Rows of one family that attacked different targets at a seed (trained on different machines) searched different
    GANs: the calibration is their mean for that seed, and the interval is over the seeds."""
    rows = [row("kedmi", s, 3.5, gan="kedmi-gan-") for s in range(3)] + [row("kedmi+lomma", s, 3.4, gan="kedmi-gan-") for s in range(2)]
    rows.append(row("kedmi+lomma", 2, 3.4, target="m", gan="kedmi-gan-m"))
    rows[-1]["baselines"]["random-latents"]["knn_ratio"] += 1.0  # the other machine's GAN: 7.2 beside 6.2 at seed 2
    text = bench.render("glyphs", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    latents = next(line for line in text.splitlines() if line.startswith("| calibration: random latents"))
    cells = [cell.strip() for cell in latents.split("|")]
    assert cells[1] == "calibration: random latents of the attack's GAN (kedmi, kedmi+lomma)" and cells[2] == "3"
    assert cells[4].startswith("6.27 [")  # seeds 6.0, 6.1 and (6.2 + 7.2) / 2; over (seed, GAN) pairs it would read 6.38 over 4


def test_a_reversal_is_explained_only_by_a_protocol_on_its_own_data():
    """mnist5k's reversals point to mnist5k's explain protocols; one with no protocol on mnist5k is marked unexplained
    (and says where the same reversal was tested on other data), never borrowing glyphs' explanation."""
    rows = ([row("gmi", s, 3.7 + 0.01 * s) for s in range(3)] + [row("mirror-bb", s, 2.3 + 0.01 * s) for s in range(3)]
            + [row("kedmi", s, 3.5 + 0.01 * s, gan="kedmi-gan-") for s in range(3)] + [row("mi-face", s, 9.0 + 0.01 * s, gan="") for s in range(3)])
    for r in rows:
        r["config"]["data"] = bench.MNIST5K
    text = bench.render("mnist5k", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert "- white-box GMI above black-box Mirror: **reversed** (knn_ratio 3.71 [3.69, 3.73] vs 2.31 [2.29, 2.33]) (where it comes from: protocol `mnist5k-explain`)" in text
    assert "- KEDMI >= GMI (Chen et al. 2021): **confirmed**" in text
    rows = [r for r in rows if r["attack"] != "kedmi"] + [row("kedmi", s, 4.5 + 0.01 * s, gan="kedmi-gan-") for s in range(3)]
    text = bench.render("mnist5k", rows, [Run(rows, None, 0.0, {}, {}, [])], 20)
    assert ("- KEDMI >= GMI (Chen et al. 2021): **reversed** (knn_ratio 4.51 [4.49, 4.53] vs 3.71 [3.69, 3.73]) "
            "(unexplained on mnist5k; tested elsewhere by `glyphs-explain-kedmi` on glyphs)") in text
    assert bench.PROTOCOLS["mnist5k-explain"]["data"] == bench.PROTOCOLS["mnist5k"]["data"] == bench.MNIST5K
    assert bench.PROTOCOLS["mnist5k-explain-lomma"]["rows"] == ["plg-mi+lomma", "plg-mi", "plg-mi+lomma (logit loss only)"]
    assert bench.base_of("mnist5k-explain-lomma") == "mnist5k" and bench.base_of("glyphs-explain") == "glyphs" and bench.base_of("glyphs") == "glyphs"
