"""An experiment as plain, validated data: dataset and split, target, access, defense, attack, metrics, seed.

A `Scenario` is everything but the attack and the defense; an `ExperimentConfig` adds one of each, a
`TradeoffConfig` adds several attacks and a sweep of one defense's strength."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from modelinv.data.schema import TabularSchema
from modelinv.devices import DEVICE_CHOICES, check_device
from modelinv.errors import ModelinvError
from modelinv.models.trainer import TrainConfig
from modelinv.observation import Observation
from modelinv.validation import read_yaml, validate

Seed = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1, description="drives data splits, initialisation and optimisation")]
"""A seed: an integer in [0, 2^32) (NumPy's range); a boolean or a float is refused, not read as a number."""
Count = Annotated[int, Field(strict=True, ge=1)]
"""A positive count: `true` is refused, not read as 1."""
Number = Annotated[int, Field(strict=True)] | Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A finite number, not a boolean."""


PATH_SOURCES = ("idx", "npz", "folder", "csv", "text")
"""Data-source prefixes followed by file paths (`idx:IMAGES[,LABELS]` holds two); the others take a name or a count."""


def absolute(path: str, base: Path | None = None) -> str:
    """`path` made absolute: against `base` (a config file's folder) when it exists there or not in the working
    directory (configs written before paths were resolved named them from where they ran), else the working directory."""
    found = Path(path).expanduser()
    if found.is_absolute():
        return os.path.normpath(found)
    if base is not None and ((base / found).exists() or not found.exists()):
        found = base / found
    return os.path.abspath(found)


def absolute_source(source: str, base: Path | None = None) -> str:
    """A data source with its file paths absolute (`absolute`); a dataset name or a `records:N` source unchanged."""
    prefix, colon, rest = source.partition(":")
    if not colon or prefix not in PATH_SOURCES or not rest:
        return source
    return f"{prefix}:" + ",".join(absolute(part, base) if part else part for part in rest.split(",")) if prefix == "idx" else f"{prefix}:{absolute(rest, base)}"


def resolve_paths(raw: Any, base: Path) -> Any:
    """A raw config mapping with every relative path in it (data sources, model weights, an API key file, in the
    scenario, a grid's lists or an audit) made absolute against `base`, the folder of the config file."""
    if isinstance(raw, list):
        return [resolve_paths(item, base) for item in raw]
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key, value in raw.items():
        if key in ("source", "public_source") and isinstance(value, str):
            out[key] = absolute_source(value, base)
        elif key in ("weights", "key_file") and isinstance(value, str):
            out[key] = absolute(value, base)
        elif key in ("data", "datasets", "target", "targets", "evaluator", "access") and isinstance(value, (dict, list)):
            out[key] = resolve_paths(value, base)
    return out


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _train_field(name: str, **bounds: Any) -> Any:
    info = TrainConfig.model_fields[name]
    return Field(info.default, description=info.description, **bounds)


class TrainSettings(TrainConfig):
    """`TrainConfig` as a config gives it: counts strict (`epochs: true` is refused), the learning rate finite and
    at most 10 (larger only overflows), everything else as TrainConfig; its dump, and so the cache key, is TrainConfig's."""

    epochs: int = _train_field("epochs", strict=True, ge=1, le=1_000_000)
    batch_size: int = _train_field("batch_size", strict=True, ge=1)
    lr: float = _train_field("lr", gt=0, le=10, allow_inf_nan=False)
    weight_decay: float = _train_field("weight_decay", ge=0, allow_inf_nan=False)
    augment_shift: int = _train_field("augment_shift", strict=True, ge=0)
    val_fraction: float = _train_field("val_fraction", gt=0, lt=1)
    patience: int | None = _train_field("patience", strict=True, ge=1)


def _without(data: dict[str, Any], **defaults: tuple[Any, ...]) -> dict[str, Any]:
    """`data` (a config's dump) without each field whose value is one of its `defaults`: a field added later then
    leaves the dump, and so the run ids, of configs that do not use it as they were."""
    for name, values in defaults.items():
        if name in data and data[name] in values:
            del data[name]
    return data


class DataConfig(Strict):
    source: str = Field("mnist5k", description="dataset name or file source (idx:, npz:, folder:, csv:)")
    split: Literal["same-distribution", "class-disjoint", "cross-domain"] = "same-distribution"
    public_source: str | None = Field(None, description="the attacker's data source for cross-domain splits")
    image_size: int | None = Field(None, strict=True, ge=4, description="resize images to this size (within the memory budget)")
    label_column: str | None = None
    tabular: TabularSchema | None = Field(None, description="the schema of tabular data: sensitive column, categorical levels, bins")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    public_fraction: float = Field(0.3, gt=0, lt=1)
    private_classes: list[Annotated[int, Field(strict=True, ge=0)]] | None = None
    evaluator_fraction: float = Field(0.5, gt=0, lt=1, description="share of the private training pool that trains the judge (images)")
    judge_classes: Literal["private", "all"] = Field(
        "private",
        description="the classes the judge tells apart: the private ones, or (class-disjoint split) all, learning the public ones from a held-out evaluator_fraction of the public pool the attacker never gets",
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """`judge_classes` appears only when not the default: configs without it dump (and keep run ids) as before it existed."""
        return _without(handler(self), judge_classes=("private",))

    @field_validator("source", "public_source")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """File paths absolute (from the working directory; `load_config` resolves a file's from its folder first),
        so that a written config.yaml reruns from anywhere."""
        return value if value is None else absolute_source(value)


class ModelConfig(Strict):
    arch: str = Field("lenet", description="a registered architecture; with `weights` also module:path.to.factory (your own class), 'onnx' or 'torchscript'")
    args: dict[str, Any] = Field(default_factory=dict)
    train: TrainSettings = Field(default_factory=TrainSettings)
    weights: str | None = Field(None, description="a trained model to load instead of training: safetensors of `arch`, an ONNX or a TorchScript file")
    trust_code: bool = Field(
        False, description="with `weights`: run a TorchScript file (in a confined worker process) or import the module of a module:factory `arch`; refused otherwise"
    )
    normalize: tuple[float | list[float], float | list[float]] | None = Field(
        None, description="with `weights`: (mean, std) applied to the [0, 1] inputs before the model (one value, or one per channel); default none, or a registered architecture's own"
    )
    expected_acc: float | None = Field(None, ge=0, le=1, description="with `weights`: the model's known test accuracy; an audit warns when it measures far less")

    @field_validator("weights")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return value if value is None else absolute(value)

    @model_validator(mode="after")
    def _given_weights_only(self) -> "ModelConfig":
        given = [name for name in ("normalize", "expected_acc") if getattr(self, name) is not None] + (["trust_code"] if self.trust_code else [])
        if given and self.weights is None:
            raise ValueError(f"{given[0]} applies to a given model (weights), not to one modelinv trains")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """The fields of a given model appear only when set, so configs without them keep their run ids."""
        return _without(handler(self), trust_code=(None, False), normalize=(None, False), expected_acc=(None, False))


class AccessConfig(Strict):
    """The threat model: what the attacker observes, which part of the model it knows, its query budget."""

    observe: Observation | None = "features"
    layer: str | None = Field(None, description="cut layer for features; default: the model's split layer")
    white_box: Literal["none", "client", "server", "full"] = "none"
    query_budget: Count | None = None
    endpoint: str | None = Field(None, description="URL of the target served by `modelinv serve`: observations are queried over HTTP")
    key_env: str = Field("MODELINV_API_KEY", description="environment variable holding the endpoint's API key (the key never enters the config)")
    key_file: str | None = Field(None, description="file holding the endpoint's API key, instead of key_env")

    @field_validator("key_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return value if value is None else absolute(value)


class AttackConfig(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DefenseConfig(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class SweepConfig(Strict):
    """One defense at a list of strengths: `param` takes each of `values`, the other `params` stay fixed."""

    defense: str
    param: str
    values: list[Number] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Scenario(Strict):
    seed: Seed = 0
    data: DataConfig = Field(default_factory=DataConfig)
    target: ModelConfig = Field(default_factory=ModelConfig)
    evaluator: ModelConfig | None = Field(None, description="the judge; default: an architecture distinct from the target")
    access: AccessConfig = Field(default_factory=AccessConfig)
    attacker_data: Literal["public", "private-train", "public+private-train", "uniform-noise", "gaussian-noise"] = Field(
        "public",
        description="what the attacker trains or queries with (He et al. Table 4: same set, same distribution, noise; public+private-train: both pools, to test data volume; "
        "gaussian-noise N(0.5, 0.25^2) clipped to [0, 1] (the paper draws Gaussian inputs), uniform-noise U[0, 1])",
    )
    num_targets: Count = Field(64, description="private test inputs attacked (reconstruction attacks), or private training records (attribute attacks)")
    per_class: Count = Field(5, description="inversions per private class (class-representative attacks)")
    metrics: list[str] | None = Field(None, min_length=1, description="default (or null): by the attack's goal, reconstruction or class; an empty list is refused")
    device: str = Field(
        "auto",
        description=f"where models train and attacks run: {DEVICE_CHOICES}; auto is CUDA when available, else MPS when available, else the CPU",
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        try:
            return check_device(value)
        except ModelinvError as err:
            raise ValueError(str(err)) from None

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        """`device` appears only when set: configs at the default (auto) dump as before the field existed."""
        return _without(handler(self), device=("auto",))


class ExperimentConfig(Scenario):
    attack: AttackConfig
    defense: DefenseConfig | None = Field(None, description="an output or training defense of the target; default: none")


class TradeoffConfig(Scenario):
    attacks: list[AttackConfig] = Field(min_length=1)
    sweep: SweepConfig
    seeds: list[Seed] | None = Field(None, min_length=1, description="default: [seed]; with several, every table shows a 95% interval")

    def experiments(self) -> list[ExperimentConfig]:
        """The grid: the undefended reference first, then each strength; per strength each seed, per seed each attack."""
        scenario = self.model_dump(exclude={"attacks", "sweep", "seeds", "seed"})
        s = self.sweep
        defenses = [None] + [{"name": s.defense, "params": {**s.params, s.param: v}} for v in s.values]
        return [
            ExperimentConfig(**scenario, seed=seed, attack=a, defense=d) for d in defenses for seed in self.seeds or [self.seed] for a in self.attacks
        ]


S = TypeVar("S", bound=Scenario)


def with_device(cfg: S, device: str | None) -> S:
    """`cfg` with its `device` replaced by `device` (a `--device` option or `device=` argument; None: unchanged),
    checked as the config field is (`modelinv.devices.check_device`)."""
    return cfg if device is None else cfg.model_copy(update={"device": check_device(device)})


def load_config(path: Path, schema: type[Scenario] = ExperimentConfig) -> Scenario:
    """Read and validate a YAML config (an experiment by default); errors name the file or the field.

    The file is read by `modelinv.validation.read_yaml`: UTF-8, no duplicate keys, alias expansion bounded.
    Relative paths in it (data files, weights, a key file) are relative to the file's folder (`resolve_paths`),
    and the config holds them absolute, so the run's own config.yaml reruns from any working directory."""
    path = Path(path)
    raw = read_yaml(path, "config file")
    if not isinstance(raw, dict):
        raise ModelinvError(f"config file {path} must hold a mapping of fields")
    return validate(schema, resolve_paths(raw, Path(os.path.abspath(path)).parent))
