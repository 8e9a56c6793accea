"""Devices: `device: auto|cpu|cuda|cuda:N|mps` in configs and `--device` on the CLI, every attack run with the
device given explicitly, and no tensor created on a hard-coded device (a lint over the source).

There is no GPU in CI: what runs on CUDA is checked by construction (the lint) and by running everything on
the CPU given explicitly, which must change no number."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from test_attack_internals import CASES, world  # noqa: F401  (the tiny targets and settings every attack runs with)
from test_attack_internals import run as run_case

import modelinv
from helpers import assert_one_line_error, cli
from modelinv.attacks import ATTACKS
from modelinv.devices import check_device, device_of, resolve_device
from modelinv.errors import ModelinvError
from modelinv.experiment.config import ExperimentConfig
from modelinv.experiment.grid import run_id
from modelinv.models.store import ModelRequest
from modelinv.validation import validate

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE = Path(modelinv.__file__).parent
LINTED = ("attacks", "gans", "oracle", "defenses", "metrics", "models")
FACTORIES = {"zeros", "ones", "full", "empty", "rand", "randn", "randint", "randperm", "arange", "tensor", "eye", "linspace", "as_tensor"}
MOVED_BY = {"to", "tolist", "item"}
"""A factory call whose result is moved (`.to(...)`) or read back into Python (`.tolist()`, `.item()`) creates nothing that stays on the CPU."""
WITH_THE_MODULE = {"register_buffer", "Parameter"}
"""A factory call inside these belongs to a module and moves with it (`module.to(device)`)."""
WHITELIST = "# cpu:"
"""A trailing comment `# cpu: <reason>` on the call's line allows a CPU tensor on purpose (indices from a CPU
generator, a shape probe at construction)."""
TEXT_ATTACKS = {"bow_inversion.py", "canary_exposure.py", "extraction.py", "name_recovery.py", "text_attribute.py"}
"""The text attacks run against the text targets of modelinv.text, which run on the CPU (experiment/text.py);
they are not linted."""


def hard_coded_tensors(path: Path) -> list[str]:
    """`file:line: code` of each torch factory call in `path` that creates a tensor on the default device and keeps it there."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            continue
        if any(k.arg == "device" for k in node.keywords) or WHITELIST in lines[node.lineno - 1]:
            continue
        up, ok = node, False
        while up in parent and not ok:  # the expression the call is part of: a method chain, or a call's argument
            up = parent[up]
            if isinstance(up, ast.Attribute) and up.attr in MOVED_BY:
                ok = True
            elif isinstance(up, ast.Call) and isinstance(up.func, (ast.Attribute, ast.Name)) and getattr(up.func, "attr", getattr(up.func, "id", None)) in WITH_THE_MODULE:
                ok = True
            elif isinstance(up, ast.stmt):
                break
        if not ok:
            found.append(f"{path.relative_to(SOURCE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_no_tensor_is_created_on_a_hard_coded_device():
    """Attacks, GANs, oracles, defenses, metrics and models create tensors on the device of what they work with
    (`device=x.device`, `x.new_*`, `*_like`), or draw on the CPU and move the draw (`.to(device)`)."""
    files = [p for d in LINTED for p in sorted((SOURCE / d).rglob("*.py")) if p.name not in TEXT_ATTACKS or d != "attacks"]
    assert len(files) > 40
    offenders = [line for path in files for line in hard_coded_tensors(path)]
    assert not offenders, "tensors created on the default device (pass device=, move with .to(), or whitelist with '# cpu: reason'):\n" + "\n".join(offenders)


def test_the_lint_catches_a_hard_coded_tensor(tmp_path):
    bad = SOURCE / "attacks" / "_lint_probe.py"
    try:
        bad.write_text(
            "import torch\n"
            "def f(x, gen):\n"
            "    a = torch.zeros(3)\n"
            "    b = torch.zeros(3, device=x.device)\n"
            "    c = torch.randn(3, generator=gen).to(x.device)\n"
            "    d = torch.randperm(3, generator=gen).tolist()\n"
            "    e = torch.arange(3)  # cpu: indices\n"
            "    return torch.full((2,), 1.0).clamp(0, 1)\n"
        )
        assert [line.split(": ", 1)[1] for line in hard_coded_tensors(bad)] == ["a = torch.zeros(3)", "return torch.full((2,), 1.0).clamp(0, 1)"]
    finally:
        bad.unlink()


def test_the_text_attacks_are_the_only_ones_not_linted():
    files = {p.name for p in (SOURCE / "attacks").glob("*.py")}
    assert TEXT_ATTACKS <= files
    image_attacks = {name for name in ATTACKS.names() if ATTACKS.get(name).__module__.rsplit(".", 1)[1] + ".py" not in TEXT_ATTACKS}
    assert image_attacks == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_attack_runs_with_the_cpu_given_explicitly_and_gives_the_same_numbers(world, name):  # noqa: F811
    """The targets moved to `resolve_device("cpu")` (what `device: cpu` does): the same images as by default, on the CPU."""
    default = run_case(world, name)
    cpu = resolve_device("cpu")
    moved = {k: v.to(cpu) if isinstance(v, torch.nn.Module) else v for k, v in world.items()}
    explicit = run_case(moved, name)
    assert explicit.images.device == cpu and device_of(moved["lenet"]) == cpu
    assert torch.equal(default.images, explicit.images)


# configs and the command line


def test_device_strings_are_checked_and_auto_resolves_to_what_is_available(monkeypatch):
    for good in ("auto", "cpu", "cuda", "cuda:1", "mps", " CPU "):
        check_device(good)
    for bad in ("gpu", "cuda:", "cuda:x", "tpu", ""):
        with pytest.raises(ModelinvError, match="device must be one of auto, cpu, cuda, cuda:N or mps"):
            check_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("modelinv.devices.mps_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device("cpu") == torch.device("cpu")
    for missing in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ModelinvError, match=f"device '{missing}' is not available"):
            resolve_device(missing)


def test_config_device_defaults_to_auto_and_keeps_old_run_ids(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("modelinv.devices.mps_available", lambda: False)
    base = {"attack": {"name": "rmle"}}
    default, cpu = ExperimentConfig(**base), ExperimentConfig(**base, device="cpu")
    assert default.device == "auto" and "device" not in default.model_dump(mode="json")
    assert cpu.model_dump(mode="json")["device"] == "cpu"
    # the id of a run on the CPU is the one it had before the device field existed: the hash of the dump without it
    before = hashlib.sha256(json.dumps(default.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert run_id(default) == run_id(cpu) == before
    with pytest.raises(ModelinvError, match="invalid 'device': .*device must be one of"):
        validate(ExperimentConfig, {**base, "device": "gpu"})


def test_run_ids_and_model_keys_name_the_device_only_off_the_cpu(monkeypatch):
    base = ExperimentConfig(attack={"name": "rmle"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert run_id(base.model_copy(update={"device": "cuda"})) != run_id(base.model_copy(update={"device": "cpu"}))
    assert run_id(base.model_copy(update={"device": "cuda"})) == run_id(base.model_copy(update={"device": "cuda:1"})) == run_id(base)
    request = ModelRequest(role="target", arch="lenet", input_shape=(1, 28, 28), num_classes=10, data_digest="d", seed=0, threads=1)
    same = ModelRequest(role="target", arch="lenet", input_shape=(1, 28, 28), num_classes=10, data_digest="d", seed=0, threads=1, device="cpu")
    gpu = ModelRequest(role="target", arch="lenet", input_shape=(1, 28, 28), num_classes=10, data_digest="d", seed=0, threads=1, device="cuda:1")
    assert request.key() == same.key() != gpu.key()
    assert gpu.key() == ModelRequest(**{**gpu.__dict__, "device": "cuda"}).key(), "keyed by the device's type"


def test_a_checkpoint_is_saved_from_cpu_tensors_and_loaded_onto_the_requested_device(tmp_path):
    from modelinv.models.store import cached

    request = ModelRequest(role="t", arch="mlp", input_shape=(1, 8, 8), num_classes=3, data_digest="d", seed=0, threads=1, device="cpu")

    def produce():
        from modelinv.models import build_model

        return {"model": build_model("mlp", (1, 8, 8), 3)}, {}

    made, _ = cached(request, produce, cache_dir=tmp_path)
    loaded, meta = cached(request, produce, cache_dir=tmp_path)
    assert meta["cached"] and device_of(loaded["model"]) == torch.device("cpu")
    assert all(torch.equal(a, b) for a, b in zip(made["model"].state_dict().values(), loaded["model"].state_dict().values()))


SMALL_RUN = {
    "seed": 1,
    "target": {"arch": "lenet", "train": {"epochs": 1}},
    "evaluator": {"arch": "eval-cnn", "train": {"epochs": 1}},
    "access": {"observe": "features", "layer": "conv1", "white_box": "client"},
    "attack": {"name": "rmle", "params": {"iterations": 3}},
    "num_targets": 4,
}


def test_run_with_device_cpu_records_the_device(capsys, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(SMALL_RUN))
    code, _, err = cli(capsys, "run", config, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    (run,) = (tmp_path / "out" / "runs").iterdir()
    row = json.loads((run / "results.json").read_text())
    assert row["device"] == "cpu"
    assert yaml.safe_load((run / "config.yaml").read_text())["device"] == "cpu"


@pytest.mark.parametrize("device, needle", [("gpu", "device must be one of"), ("cuda", "device 'cuda' is not available")])
def test_a_bad_or_missing_device_is_a_one_line_error_before_any_work(capsys, tmp_path, monkeypatch, device, needle):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(SMALL_RUN))
    code, _, err = cli(capsys, "run", config, "--out", tmp_path / "out", "--device", device)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out" / "runs").exists()
    config.write_text(yaml.safe_dump({**SMALL_RUN, "device": device}))
    code, _, err = cli(capsys, "run", config, "--out", tmp_path / "out2")
    assert_one_line_error(code, err, needle)


@pytest.mark.parametrize("command", ["run", "demo", "sweep", "tradeoff", "audit", "train"])
def test_every_command_that_trains_or_attacks_takes_device(capsys, command):
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0 and "--device" in out
