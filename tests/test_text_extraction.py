"""Extraction of inserted secrets from the character language model (Carlini et al., USENIX Security 2021): the
decoding itself on hand-made and random models (beam search beats greedy where the greedy choice is a trap, and a
wide enough beam finds the candidate of least log-perplexity), and the attack on a trained char-lm, judged against
the never-inserted canaries. Small, deterministic, one thread."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelinv.attacks import ATTACKS, Targets
from modelinv.attacks.extraction import beam_search
from modelinv.data.text import text_dataset
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.runner import run_experiment
from modelinv.metrics import MetricInputs, compute
from modelinv.oracle import Scores, ThreatModel
from modelinv.text.lm import CharLM, make_canaries, sequence_log_perplexity, split_secret
from modelinv.text.tokenizers import CharTokenizer
from modelinv.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TOKENIZER = CharTokenizer.fit(["pin is "], 64)
DIGITS = torch.tensor([TOKENIZER.index[c] for c in "0123456789"])


class TrapLM(nn.Module):
    """Next-character log-probabilities set by hand after the prefix "pin is " (7 characters + BOS): the first digit is
    '1' with probability 0.5 and '2' with 0.4; after '1' every digit is equally likely (0.1), after '2' the next is '7'
    with 0.9. Greedy decoding takes '1' and then completes '10' (0.05); the most likely secret is '27' (0.36)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        probs = torch.full((*ids.shape, len(TOKENIZER)), 1e-6)
        t = ids.shape[1] - 1  # the last position predicts the next character
        first = torch.full((len(TOKENIZER),), 1e-6)
        first[DIGITS] = 0.1 / 8
        first[TOKENIZER.index["1"]], first[TOKENIZER.index["2"]] = 0.5, 0.4
        for i, row in enumerate(ids):
            if t == 7:
                probs[i, t] = first
            elif t == 8 and row[8] == TOKENIZER.index["2"]:
                probs[i, t, DIGITS] = 0.1 / 9
                probs[i, t, TOKENIZER.index["7"]] = 0.9
            else:
                probs[i, t, DIGITS] = 0.1
        return probs.log()


def attacker_texts() -> object:
    return text_dataset(["pin is 00"], [0], ("text",), "attacker").tokenized(TOKENIZER)


def test_beam_search_escapes_the_greedy_trap():
    threat = ThreatModel(observer=Scores(TrapLM(), "logits"))
    prefix = TOKENIZER.encode(["pin is "])
    greedy, beam = (beam_search(threat, prefix, 2, DIGITS, width) for width in (1, 2))
    assert TOKENIZER.decode(greedy) == ["10"] and TOKENIZER.decode(beam) == ["27"]
    canaries = TOKENIZER.encode(["pin is 27", "pin is 10"])
    for width, extracted in ((1, [False, True]), (2, [True, False])):
        result = ATTACKS.get("extraction")(beam_width=width)(threat, Targets(records=canaries, classes=torch.tensor([16, 0])), attacker_texts())
        assert (result.images == canaries).all(1).tolist() == extracted
        assert result.meta["guesses"] == ["10" if width == 1 else "27"] * 2 and result.meta["prefixes"] == 1
    assert result.meta["queries"] == 1 + 2  # beam 2: one sequence for the first digit, two for the second


def test_a_wide_beam_finds_the_secret_of_least_log_perplexity():
    """With beam width >= |A|^(L-1) the search is exact: its secret is the one canary-exposure ranks first."""
    tokenizer = CharTokenizer.fit(["code "], 32)
    torch.manual_seed(0)
    model = CharLM(len(tokenizer), dim=8, hidden=16).double().eval()
    threat = ThreatModel(observer=Scores(model, "logits"))
    candidates = [f"code {s:02d}" for s in range(100)]
    with torch.no_grad():
        px = sequence_log_perplexity(model(tokenizer.encode(candidates)), tokenizer.encode(candidates))
    digits = torch.tensor([tokenizer.index[c] for c in "0123456789"])
    found = beam_search(threat, tokenizer.encode(["code "]), 2, digits, 10)
    assert "code " + tokenizer.decode(found)[0] == candidates[int(px.argmin())]


def test_extraction_metrics_count_exact_secrets_by_repetitions():
    truth = torch.tensor([[1, 5, 6], [1, 5, 7], [1, 5, 8], [1, 5, 9]])
    recovered = torch.tensor([[1, 5, 6], [1, 5, 6], [1, 5, 8], [1, 5, 8]])
    scores = compute(["extraction", "extraction_inserted"], MetricInputs(reconstructions=recovered, labels=torch.tensor([16, 16, 4, 0]), truth=truth))
    assert scores == {"extraction": 0.5, "extraction_inserted": pytest.approx(2 / 3)}
    never = MetricInputs(reconstructions=recovered[3:], labels=torch.tensor([0]), truth=truth[3:])
    assert compute(["extraction", "extraction_inserted"], never) == {"extraction": 0.0, "extraction_inserted": None}


def test_canaries_with_their_own_prefixes():
    canaries = make_canaries("pin {i} is ", 4, [16], 1, 2, 0)
    assert [c.text[: len("pin 0 is ")] for c in canaries] == ["pin 0 is ", "pin 1 is ", "pin 2 is "]
    assert [c.repetitions for c in canaries] == [16, 0, 0]
    assert all(split_secret(c.text) == (c.text[:-4], c.secret) for c in canaries)
    with pytest.raises(ModelinvError, match="must not end in a digit"):
        make_canaries("pin {i}", 4, [16], 1, 2, 0)


def config(**fields) -> ExperimentConfig:
    return validate(ExperimentConfig, {"seed": 0, **fields})


LM = {"arch": "char-lm", "args": {"repetitions": [1, 16], "reference_canaries": 4}, "train": {"epochs": 12, "lr": 0.01, "batch_size": 16}}
"""tests/test_text.py's exposure model (the session's model cache trains it once): 16 insertions of one secret expose it."""


def test_extraction_recovers_the_repeated_secret_and_never_a_never_inserted_one():
    runs = {
        width: run_experiment(config(data={"source": "records:200"}, target=LM, access={"observe": "logits"}, attack={"name": "extraction", "params": {"beam_width": width}}))
        for width in (1, 8)
    }
    for width, (row, images) in runs.items():
        by_count = row["attack_details"]["extraction_by_repetitions"]
        assert row["goal"] == "extraction" and row["model"] == "char-lm"
        assert row["extraction"] == by_count["16"] == 1.0, f"beam {width}"
        assert by_count["0"] == 0.0 and row["baselines"]["never-inserted"]["extraction"] == 0.0
        examples = {e["secret"]: e for e in row["attack_details"]["examples"]}
        assert len({e["extracted"] for e in examples.values()}) == 1, "one prefix, one completion"
        sixteen = next(e for e in examples.values() if e["repetitions"] == 16)
        assert sixteen["extracted"] == sixteen["secret"] and images["truth"].shape == images["reconstructions"].shape
    assert runs[8][0]["queries"] == 1 + 8 * 3 and runs[1][0]["queries"] == 4  # one shared prefix: 4 characters decoded once


def test_extraction_needs_canaries_and_logits():
    with pytest.raises(ModelinvError, match="has none"):
        run_experiment(config(data={"source": "records:400"}, target={"arch": "text-encoder"}, attack={"name": "extraction"}))
    with pytest.raises(ModelinvError, match="decodes inserted canaries"):
        ATTACKS.get("extraction")()(ThreatModel(observer=Scores(TrapLM(), "logits")), Targets(records=TOKENIZER.encode(["pin is 27"])), attacker_texts())
