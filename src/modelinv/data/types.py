"""Dataset containers: images as float tensors in [0, 1] of shape (N, C, H, W); tabular rows with a schema."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch

from modelinv.data.sensitive import SensitiveAttribute


@dataclass(frozen=True)
class Dataset:
    """Inputs `x`, integer labels `y` (indices into `classes`) and a name saying where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def subset(self, index: torch.Tensor, name: str | None = None) -> "Dataset":
        """The rows at `index` (a LongTensor or bool mask), keeping the schema."""
        return replace(self, x=self.x[index], y=self.y[index], name=name or self.name)

    def digest(self) -> str:
        """SHA-256 of inputs and labels: identifies exactly which data a model or result came from."""
        h = hashlib.sha256()
        h.update(str(tuple(self.x.shape)).encode())
        h.update(self.x.detach().cpu().contiguous().to(torch.float32).numpy().tobytes())
        h.update(self.y.detach().cpu().contiguous().to(torch.int64).numpy().tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class ImageDataset(Dataset):
    """Images: `x` float32 (N, C, H, W) in [0, 1]."""


@dataclass(frozen=True)
class TabularDataset(Dataset):
    """Records: `x` float32 (N, D); `columns` names each feature; categorical columns hold level indices;
    `sensitive` is the column attribute-inference attacks guess (see modelinv.data.schema), if declared."""

    columns: tuple[str, ...] = ()
    levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sensitive: SensitiveAttribute | None = None


@dataclass(frozen=True)
class Splits:
    """The data of one threat model: what the victim trains on, what the attacker holds, what the judge learns.

    For images `evaluator_train` is private data disjoint from `private_train` and `private_test` (the judge never
    sees the target's training images); for tabular data it is `private_train` itself. `digests()` covers every part."""

    kind: str
    private_train: Dataset
    private_test: Dataset
    public: Dataset
    evaluator_train: Dataset

    def digests(self) -> dict[str, str]:
        return {
            "private_train": self.private_train.digest(),
            "private_test": self.private_test.digest(),
            "public": self.public.digest(),
            "evaluator_train": self.evaluator_train.digest(),
        }
