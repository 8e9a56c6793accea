"""Text in the report and text models in the audit (issue 17): the HTML report shows each attacked text beside what
was recovered, sensitive words highlighted, recovered words marked, every text escaped; `modelinv audit` takes a text
model (its checkpoint directory) with `--data text:PATH` and writes a verdict by the report's rule.

Small and deterministic: a few hundred texts, tiny encoders trained for a few epochs, one thread."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from helpers import assert_one_line_error, cli, invoke
from modelinv.data import load
from modelinv.data.text import content_words, text_splits
from modelinv.models.trainer import TrainConfig
from modelinv.report.html import highlight, text_examples
from modelinv.report.html import is_text as is_text_row
from modelinv.text import build_text_target

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = {"dim": 32, "layers": 1, "heads": 2, "vocab_size": 300}
FIRST = ("Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kwame", "Lena")
LAST = ("Ortiz", "Novak", "Kowalski", "Haddad", "Lindqvist", "Mensah", "Tanaka", "Rossi")
DIAGNOSES = ("asthma", "diabetes", "migraine", "anemia")
TEMPLATES = (
    "Patient {f} {l} was treated for {d} last week",
    "{f} {l} reports {d} and asks for a refill",
    "Note on {f} {l}: {d} under control <script>alert('{l}')</script>",
)


def section(html: str, start: str, end: str) -> str:
    i = html.index(start)
    return html[i : html.index(end, i)]


# ---- the rendering itself ------------------------------------------------------------------------------------


def test_texts_are_escaped_with_sensitive_words_highlighted_and_hits_marked():
    assert highlight("Ann <b>Lee</b> has asthma", {"ann", "asthma"}, {"asthma", "lee"}) == (
        '<mark class="sensitive">Ann</mark> &lt;b&gt;<span class="hit">Lee</span>&lt;/b&gt; has <mark class="sensitive hit">asthma</mark>'
    )
    row = {
        "goal": "bag-of-words",
        "attack_details": {"examples": [{"original": "Jane Roe <script>x()</script> has asthma", "recovered": ["asthma", "script", "fever"], "sensitive": ["asthma", "jane", "roe"]}]},
    }
    html = text_examples(row)
    assert "<script" not in html and '&lt;<span class="hit">script</span>&gt;x()&lt;/<span class="hit">script</span>&gt;' in html
    assert '<mark class="sensitive">Jane</mark> <mark class="sensitive">Roe</mark>' in html  # sensitive, not recovered
    assert '<mark class="sensitive hit">asthma</mark>' in html  # sensitive and recovered
    assert '<span class="word hit" title="in the original"><mark class="sensitive">asthma</mark></span>' in html
    assert '<span class="word miss" title="not in the original">fever</span>' in html
    assert "2 of 4 content words, precision 2/3; sensitive 1 of 3" in html  # content words: jane, roe, script, asthma
    attribute = {"goal": "text-attribute", "attack_details": {"examples": [{"original": "Bo <i>Li</i> has gout", "true": "gout", "guessed": "flu"}]}}
    shown = text_examples(attribute)
    assert '&lt;i&gt;Li&lt;/i&gt; has <mark class="sensitive">gout</mark>' in shown and "flu</span> ✗" in shown
    canary = {"goal": "memorization", "attack_details": {"examples": [{"canary": "my pin code is 0042", "secret": "0042", "repetitions": 16, "exposure": 13.3}]}}
    assert 'my pin code is <mark class="sensitive secret">0042</mark>' in text_examples(canary)
    assert is_text_row(canary) and not is_text_row({"goal": "reconstruct"})


# ---- a text run, reported ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def records_report(tmp_path_factory):
    """`modelinv run` of a bow-inversion on 200 generated records (names and diagnoses known as sensitive), then
    `modelinv report`."""
    out = tmp_path_factory.mktemp("text-run")
    config = {
        "seed": 0,
        "num_targets": 8,
        "data": {"source": "records:200", "public_fraction": 0.5},
        "target": {"arch": "text-encoder", "args": TINY, "train": {"epochs": 2}},
        "access": {"observe": "features"},
        "attack": {"name": "bow-inversion", "params": {"epochs": 10}},
    }
    path = out / "text.yaml"
    path.write_text(yaml.safe_dump(config))
    assert invoke("run", path, "--out", out / "run", "--threads", 1) == 0
    assert invoke("report", out / "run") == 0
    (row,) = [json.loads(p.read_text()) for p in (out / "run" / "runs").glob("*/results.json")]
    return row, (out / "run" / "report.html").read_text()


def test_report_shows_each_text_beside_what_was_recovered(records_report):
    row, html = records_report
    texts = section(html, "<h2>Recovered text</h2>", "<h2>Runs</h2>")
    examples = row["attack_details"]["examples"]
    assert len(examples) == 8 and all(e["sensitive"] for e in examples)
    for example in examples:
        truth, sensitive, recovered = content_words(example["original"]), set(example["sensitive"]), example["recovered"]
        shown = highlight(example["original"], sensitive, set(recovered) & truth)
        assert shown in texts  # the original, its sensitive words highlighted and its recovered words marked
        assert shown.count('<mark class="sensitive') >= len(sensitive)  # names and diagnosis are words of the record
        words = re.findall(r'<span class="word (hit|miss)" title="[^"]*">(?:<mark class="sensitive">)?([^<]*)<', texts[texts.index(shown) :])[: len(recovered)]
        assert words == [("hit" if w in truth else "miss", w) for w in recovered]  # beside it, each recovered word marked


def test_text_metrics_stand_beside_their_trivial_answers_without_image_panels(records_report):
    row, html = records_report
    runs = section(html, "<h2>Runs</h2>", "<h2>Environment")
    base = row["baselines"]["most-frequent-words"]
    for metric in ("bow_f1", "bow_precision", "bow_recall", "bow_sensitive_recall"):
        assert f"<th>{metric}</th>" in runs
    trivial_row = re.search(r'<tr class="trivial"><td>trivial answer</td>(.*?)</tr>', runs).group(1)
    assert f">{float(base['bow_f1']):.3g}<" in trivial_row and f">{float(row['bow_f1']):.3g}<" in runs
    assert "(no image)" not in html and '<img class="pix"' not in html and "<h2>Privacy-utility</h2>" not in html
    assert "<script" not in html


# ---- a text model, audited -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    """A user's labelled text file (diagnosis after a TAB; a third of the lines hold markup) and a text-encoder
    trained on it by modelinv (its checkpoint directory: what the user audits)."""
    folder = tmp_path_factory.mktemp("notes")
    lines = []
    for i in range(150):
        first, last, diagnosis = FIRST[i % len(FIRST)], LAST[(5 * i) % len(LAST)], DIAGNOSES[(7 * i) % len(DIAGNOSES)]
        lines.append(TEMPLATES[i % len(TEMPLATES)].format(f=first, l=last, d=diagnosis) + "\t" + diagnosis)
    path = folder / "notes.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = text_splits(load(f"text:{path}"), seed=0)
    target = build_text_target("text-encoder", TINY, TrainConfig(epochs=2), splits.private_train, splits.private_test, seed=0)
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump({"bow-inversion": {"epochs": 10}}))
    return path, target.meta["path"], params


@pytest.fixture(scope="module")
def notes_audit(notes, tmp_path_factory):
    path, checkpoint, params = notes
    out = tmp_path_factory.mktemp("text-audit")
    args = ["audit", "--model", checkpoint, "--arch", "text-encoder", "--data", f"text:{path}", "--access", "features"]
    assert invoke(*args, "--params", params, "--max-rounds", 0, "--threads", 1, "--out", out) == 0
    return out


def test_audit_of_a_text_model_runs_the_text_attacks_and_writes_a_verdict(notes_audit):
    summary = json.loads((notes_audit / "audit.json").read_text())
    assert summary["attacks"] == ["bow-inversion", "text-attribute"]  # name-recovery needs records; canary-exposure a language model
    assert len(summary["verdict"]) == 2 and summary["verdict"][0].startswith(("Leakage measured", "No leakage measured"))
    assert "bow_f1" in summary["verdict"][0] and "(trivial answer" in summary["verdict"][0]
    defended = [o for o in summary["outcomes"] if o["name"] is not None]
    assert [o["name"] for o in defended].count("laplace-noise") == 3 and [o["name"] for o in defended].count("gaussian-noise") == 3
    rows = [json.loads(p.read_text()) for p in (notes_audit / "runs").glob("*/results.json")]
    assert len(rows) == 14 and {r["model"] for r in rows} == {"text-encoder"} and {r["checkpoints"]["target"] for r in rows} == {summary["config"]["model"]}
    plain = next(r for r in rows if r["attack"] == "bow-inversion" and r["defense"] is None)
    leaks = plain["bow_f1"] >= plain["baselines"]["most-frequent-words"]["bow_f1"] + 0.05  # report.audit's margin for bow_f1
    assert summary["verdict"][0].startswith("Leakage measured" if leaks else "No leakage measured")
    html = (notes_audit / "report.html").read_text()
    assert "Model under audit: " in html and summary["verdict"][0].split(":")[0] in html
    assert "<script" not in html and "&lt;script&gt;alert(&#x27;" in re.sub(r"</?(span|mark)[^>]*>", "", html)  # the user's texts, escaped
    assert "<h2>Recovered text</h2>" in html and '<span class="word ' in html


def test_text_audit_refuses_bad_combinations_in_one_line(notes, tmp_path, capsys):
    path, checkpoint, _ = notes
    data = ["--data", f"text:{path}", "--out", tmp_path / "out"]
    cases = [
        (["--arch", "text-encoder", "--access", "features"], "needs the model: its modelinv checkpoint directory"),
        (["--model", checkpoint, "--arch", "minilm", "--access", "features"], "is pre-trained"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "label"], "no text attack applies to 'text-encoder' with access 'label'"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features:head"], "releases its 'embedding' only"),
        (["--model", checkpoint, "--arch", "char-lm", "--access", "logits"], "holds a 'text-encoder', not a 'char-lm'"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--attack", "canary-exposure"], "has none"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--attack", "name-recovery"], "audit on records data"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--attack", "rmle"], "not text target"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--normalize", "0.5,0.5"], "normalize applies to image"),
        (["--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--num-targets", 500], "num_targets 500 is more than"),
        (["--model", checkpoint, "--arch", "lenet", "--access", "probs"], "is text data"),
    ]
    for args, needle in cases:
        code, _, err = cli(capsys, "audit", *args, *data)
        assert_one_line_error(code, err, needle)
    code, _, err = cli(capsys, "audit", "--model", checkpoint, "--arch", "text-encoder", "--access", "features", "--data", "mnist5k", "--out", tmp_path / "img")
    assert_one_line_error(code, err, "is audited on text data")
    assert not (tmp_path / "out" / "results.sqlite").exists()
