"""Text sources, offline and deterministic: synthetic personal records, a public corpus of another domain, a user's file.

- `records` / `records:N`: personal records generated with `faker` (seeded): a name, an address, a phone number,
  a date of birth, a diagnosis and a free-text note, rendered into one sentence by one of several templates.
  Labels are the diagnosis (one of `DIAGNOSES`); the words that identify the person or the condition (first and
  last name, diagnosis) are each text's `sensitive` words. Needs the `faker` package (the `text` extra).
- `pydocs` / `pydocs:N`: sentences of the Python reference documentation shipped with the interpreter
  (`pydoc_data.topics`): English text of another domain, the attacker's public corpus in a cross-domain split.
- `text:PATH`: a user's file, one text per line; a line `TEXT<TAB>LABEL` gives a label (every line or none).

A `TextDataset` holds the texts themselves; its `x` is a placeholder (each row's index) until a target's
tokeniser turns the texts into token ids (`tokenized`). `text_splits` cuts records into the private training
and test parts and the attacker's part (disjoint people), or takes a public corpus as the attacker's.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from modelinv.data.bundled import DATASETS
from modelinv.data.files import FILE_SOURCES
from modelinv.data.types import Dataset, Splits
from modelinv.errors import ModelinvError

RECORDS, RECORDS_SEED = 2000, 1234
"""Default number of generated records and the seed of their generator (the data, not the experiment)."""

PYDOCS = 3000
"""Default number of documentation sentences in `pydocs`."""

DIAGNOSES = (
    "asthma",
    "diabetes",
    "hypertension",
    "migraine",
    "depression",
    "arthritis",
    "pneumonia",
    "bronchitis",
    "epilepsy",
    "anemia",
    "psoriasis",
    "glaucoma",
)
"""The diagnoses a record may carry: the label of `records`, and the attribute attribute inference guesses."""

SYMPTOMS = ("headaches", "fatigue", "coughing", "dizziness", "joint pain", "chest pain", "insomnia", "nausea", "back pain", "rashes", "fever", "shortness of breath")
REQUESTS = ("asked for a refill", "requested a follow-up", "missed the last appointment", "wants a second opinion", "paid the invoice", "moved recently")

TEMPLATES = (
    "{name} was born on {dob} and lives at {address}. Diagnosis: {diagnosis}. Phone {phone}. Note: {note}",
    "Patient {name}, phone {phone}, address {address}, date of birth {dob}, was diagnosed with {diagnosis}; {note}",
    "Record for {name} ({dob}), {address}: treated for {diagnosis}. Contact {phone}. {note}",
    "{name} called from {phone} about the {diagnosis} treatment. Lives at {address}, born {dob}. {note}",
    "Account holder {name}, born {dob}, {address}, reachable at {phone}, has a history of {diagnosis}. {note}",
    "Our client {name} reports {diagnosis}. Address on file: {address}. Born {dob}, phone {phone}. {note}",
)
"""How a record becomes a sentence; each record draws one."""

NOTES = (
    "complains of {symptom} since {month}",
    "reports {symptom} and {symptom2}",
    "{request}",
    "{request} after {symptom}",
    "no {symptom} this month, {request}",
)

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased words (runs of letters and digits) of `text`, in order.

    Example: words("Dr. Smith, born 1970") -> ["dr", "smith", "born", "1970"]
    """
    return WORD.findall(text.lower())


@functools.cache
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words: the words a bag-of-words inversion is not scored on (imported when first
    needed, like the bundled scikit-learn datasets, so that loading modelinv.data stays quick)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def content_words(text: str) -> set[str]:
    """The set of content words of `text`: alphabetic words of two letters or more that are not stop words
    (Song & Raghunathan, CCS 2020, score inversions on these).

    Example: content_words("She was born in Paris on 3 May") -> {"born", "paris"} ("may" is a stop word)
    """
    stop = stop_words()
    return {w for w in words(text) if w.isalpha() and len(w) > 1 and w not in stop}


@dataclass(frozen=True)
class TextDataset(Dataset):
    """Texts with integer labels `y` (indices into `classes`).

    `texts` are the raw strings; `sensitive` gives, per text, the words that identify its person or condition
    (empty for sources that do not know them); `attributes` maps an attribute name (e.g. "first_name") to one
    value per text. `x` is each row's index (N, 1) until `tokenized` replaces it by token ids (N, T).

    Example: generate_records(100).subset(torch.arange(10)).texts has 10 texts"""

    texts: tuple[str, ...] = ()
    sensitive: tuple[tuple[str, ...], ...] = ()
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tokenizer: Any = None
    """The target's public tokeniser once `tokenized` (modelinv.text.tokenizers): how an attacker writes its own queries."""

    def subset(self, index: torch.Tensor, name: str | None = None) -> "TextDataset":
        """The texts at `index` (a LongTensor or bool mask), with their labels, sensitive words and attributes."""
        index = torch.as_tensor(index)
        rows = index.nonzero().flatten().tolist() if index.dtype == torch.bool else index.flatten().tolist()
        pick = lambda values: tuple(values[i] for i in rows)  # noqa: E731
        return replace(
            self,
            x=self.x[index],
            y=self.y[index],
            texts=pick(self.texts),
            sensitive=pick(self.sensitive) if self.sensitive else (),
            attributes={k: pick(v) for k, v in self.attributes.items()},
            name=name or self.name,
        )

    def tokenized(self, tokenizer: Any) -> "TextDataset":
        """The same texts with `x` = their token ids (N, T) under a target's `tokenizer` (which it keeps)."""
        return replace(self, x=tokenizer.encode(self.texts), tokenizer=tokenizer)

    def digest(self) -> str:
        """SHA-256 of the texts and labels."""
        h = hashlib.sha256()
        for text in self.texts:
            h.update(text.encode())
            h.update(b"\n")
        h.update(self.y.detach().cpu().contiguous().to(torch.int64).numpy().tobytes())
        return h.hexdigest()


def text_dataset(texts: list[str], labels: list[int], classes: tuple[str, ...], name: str, **extra: Any) -> TextDataset:
    """A TextDataset of `texts` with placeholder inputs (row indices)."""
    n = len(texts)
    return TextDataset(
        x=torch.arange(n, dtype=torch.float32).unsqueeze(1), y=torch.tensor(labels, dtype=torch.int64), classes=classes, name=name, texts=tuple(texts), **extra
    )


def _faker():
    spec = importlib.util.find_spec("faker")
    if spec is None:
        raise ModelinvError("the records dataset is generated with faker: pip install 'modelinv[text]' (or pip install faker)")
    return importlib.import_module("faker").Faker


NAME_FIELDS = ("first_name", "last_name")


@functools.cache
def candidate_names(field: str) -> tuple[str, ...]:
    """The public list of candidate names a `records` name is drawn from: the first or last names of faker's en_US
    provider (690 first, 1,000 last names), sorted; every generated record's name is in it.

    Example: "James" in candidate_names("first_name")
    """
    if field not in NAME_FIELDS:
        raise ModelinvError(f"names are {' or '.join(NAME_FIELDS)}, not {field!r}")
    _faker()  # the one-line error when faker is missing
    provider = importlib.import_module("faker.providers.person.en_US").Provider
    return tuple(sorted(set(provider.first_names if field == "first_name" else provider.last_names)))


def with_name(text: str, first: str, last: str, candidate: str, field: str) -> str:
    """`text`, a record of `first` `last`, with the first or last name (`field`) replaced by `candidate`.

    Example: with_name("Record for Ann Lee (1 May 1970)", "Ann", "Lee", "Bob", "first_name") -> "Record for Bob Lee (1 May 1970)"
    """
    name = f"{first} {last}"
    if name not in text:
        raise ModelinvError(f"record {text[:60]!r} does not hold its name {name!r}")
    return text.replace(name, f"{candidate} {last}" if field == "first_name" else f"{first} {candidate}")


def generate_records(n: int = RECORDS, seed: int = RECORDS_SEED) -> TextDataset:
    """`n` personal records from a seeded faker (en_US) and a seeded template choice: same n and seed, same texts.

    Shape: x (n, 1) row indices, y (n,) diagnosis indices.
    Example: generate_records(3).texts[0] -> "Patient Jane Doe, phone 555-0100, ..., was diagnosed with asthma; reports fever and nausea"
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ModelinvError(f"records: the number of records must be a positive integer, got {n!r}")
    fake = _faker()("en_US")
    fake.seed_instance(seed)
    gen = torch.Generator().manual_seed(seed)

    def draw(options: tuple[str, ...]) -> str:
        return options[int(torch.randint(len(options), (1,), generator=gen))]

    texts, labels, sensitive = [], [], []
    attributes: dict[str, list[str]] = {"first_name": [], "last_name": [], "diagnosis": [], "city": []}
    for _ in range(n):
        first, last = fake.first_name(), fake.last_name()
        city = fake.city()
        address = f"{fake.street_address()}, {city}"
        diagnosis = draw(DIAGNOSES)
        symptom, symptom2 = draw(SYMPTOMS), draw(SYMPTOMS)
        note = draw(NOTES).format(symptom=symptom, symptom2=symptom2, month=fake.month_name(), request=draw(REQUESTS))
        dob = fake.date_of_birth(minimum_age=18, maximum_age=90).strftime("%d %B %Y")
        text = draw(TEMPLATES).format(name=f"{first} {last}", dob=dob, address=address, diagnosis=diagnosis, phone=fake.phone_number(), note=note)
        texts.append(text)
        labels.append(DIAGNOSES.index(diagnosis))
        sensitive.append(tuple(sorted(content_words(f"{first} {last} {diagnosis}"))))
        for key, value in (("first_name", first), ("last_name", last), ("diagnosis", diagnosis), ("city", city)):
            attributes[key].append(value)
    return text_dataset(
        texts, labels, DIAGNOSES, f"records:{n}", sensitive=tuple(sensitive), attributes={k: tuple(v) for k, v in attributes.items()}
    )


def _count(spec: str, what: str) -> int:
    if not spec.isdigit() or int(spec) < 1:
        raise ModelinvError(f"{what}:N needs a positive number of texts, got '{spec}'")
    return int(spec)


@DATASETS.register("records", kind="text", shape=None, samples=RECORDS, classes=len(DIAGNOSES))
def records() -> TextDataset:
    """Synthetic personal records (faker, seeded): name, address, phone, birth date, diagnosis, a note; labelled by diagnosis."""
    return generate_records(RECORDS)


@FILE_SOURCES.register("records", kind="text", usage="records:N", options=())
def records_n(spec: str) -> TextDataset:
    """N synthetic personal records (faker, seeded); `records` is records:2000."""
    return generate_records(_count(spec, "records"))


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def python_doc_sentences(n: int = PYDOCS) -> TextDataset:
    """The first `n` sentences of 5 to 40 words of the Python reference documentation shipped with the interpreter
    (`pydoc_data.topics`, topics in sorted order): a public English corpus of another domain than the records.

    Shape: x (n, 1) row indices, y (n,) zeros (one class, "docs").
    """
    topics = importlib.import_module("pydoc_data.topics").topics
    texts: list[str] = []
    for key in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[key]):
            flat = " ".join(paragraph.split())
            for sentence in SENTENCE_END.split(flat):
                if 5 <= len(words(sentence)) <= 40 and "::=" not in sentence and sum(c.isalpha() for c in sentence) > 0.6 * len(sentence):
                    texts.append(sentence)
                    if len(texts) == n:
                        return text_dataset(texts, [0] * n, ("docs",), f"pydocs:{n}")
    raise ModelinvError(f"pydocs: the Python documentation has only {len(texts)} usable sentences, fewer than {n}")


@DATASETS.register("pydocs", kind="text", shape=None, samples=PYDOCS, classes=1)
def pydocs() -> TextDataset:
    """Sentences of the Python reference documentation (pydoc_data, shipped with Python): a public text corpus of another domain."""
    return python_doc_sentences(PYDOCS)


@FILE_SOURCES.register("pydocs", kind="text", usage="pydocs:N", options=())
def pydocs_n(spec: str) -> TextDataset:
    """N sentences of the Python reference documentation; `pydocs` is pydocs:3000."""
    return python_doc_sentences(_count(spec, "pydocs"))


@FILE_SOURCES.register("text", kind="text", usage="text:PATH", options=())
def read_text(spec: str) -> TextDataset:
    """A text file, one text per line (UTF-8, blank lines skipped); `TEXT<TAB>LABEL` on every line gives labels."""
    path = Path(spec)
    if not path.is_file():
        raise ModelinvError(f"text file not found: {path}")
    try:
        lines = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise ModelinvError(f"text file {path} is not UTF-8: {err.reason} at byte {err.start}") from None
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ModelinvError(f"text file {path} has no non-empty lines")
    tabbed = ["\t" in line for line in lines]
    if any(tabbed) and not all(tabbed):
        first = tabbed.index(not tabbed[0]) + 1
        raise ModelinvError(f"text file {path}: some lines have a TAB-separated label and some do not (e.g. non-empty line {first})")
    if all(tabbed):
        texts, names = zip(*(line.rsplit("\t", 1) for line in lines))
        classes = tuple(sorted(set(names)))
        labels = [classes.index(name) for name in names]
    else:
        texts, classes, labels = tuple(lines), ("none",), [0] * len(lines)
    return text_dataset(list(texts), labels, classes, f"text:{path.name}")


def text_splits(
    data: TextDataset, *, seed: int, public: TextDataset | None = None, test_fraction: float = 0.2, public_fraction: float = 0.3
) -> Splits:
    """Private training / test texts and the attacker's texts, drawn with a generator seeded by `seed`.

    Without `public`, a random `public_fraction` of `data` is the attacker's (other people's records of the same
    form: same distribution, disjoint people); with it (cross-domain), all of `data` is private. The private part
    is then cut into test (`test_fraction`) and training texts. There is no judge: `evaluator_train` is the
    private training part."""
    for name, value in (("test_fraction", test_fraction), ("public_fraction", public_fraction)):
        if not 0.0 < value < 1.0:
            raise ModelinvError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    if not isinstance(data, TextDataset) or (public is not None and not isinstance(public, TextDataset)):
        raise ModelinvError("text_splits needs text sources (records, pydocs, text:PATH) for both private and public data")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    if public is None:
        k = min(max(round(public_fraction * len(data)), 1), len(data) - 2)
        public, private = data.subset(order[:k].sort().values, f"{data.name}/public"), data.subset(order[k:].sort().values)
        kind = "same-distribution"
    else:
        public, private = replace(public, name=f"{public.name}/public"), data.subset(order.sort().values)
        kind = "cross-domain"
    if len(private) < 2:
        raise ModelinvError(f"{data.name} has {len(private)} private text(s); splitting needs at least 2")
    order = torch.randperm(len(private), generator=gen)
    k = min(max(round(test_fraction * len(private)), 1), len(private) - 1)
    test = private.subset(order[:k].sort().values, f"{data.name}/private-test")
    train = private.subset(order[k:].sort().values, f"{data.name}/private-train")
    return Splits(kind=kind, private_train=train, private_test=test, public=public, evaluator_train=train)
