"""A small transformer sentence encoder trained here: the CPU default target of embedding inversion.

Token and position embeddings, `layers` pre-norm transformer encoder layers, mean pooling over the non-padding
tokens (as all-MiniLM-L6-v2 pools), L2-normalised: the sentence embedding e(x) released to the attacker (the
"embedding" layer). A linear head on e(x) classifies the text (the diagnosis of a record), which is how it is
trained; with `untrained` it keeps its random initialisation (a random transformer's embeddings still carry its
input's words).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelinv.errors import ModelinvError

EMBEDDING = "embedding"


class EmbeddingModel(nn.Module):
    """What the oracles need of a text target: `features(ids, "embedding")` -> (N, D) and its one cut layer."""

    cut_layers = (EMBEDDING,)
    default_cut = EMBEDDING
    embedding_layer = EMBEDDING

    def check_layer(self, layer: str) -> str:
        if layer != EMBEDDING:
            raise ModelinvError(f"a sentence encoder releases its '{EMBEDDING}' only, not layer '{layer}'")
        return layer

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, ids: torch.Tensor, layer: str = EMBEDDING) -> torch.Tensor:
        """The sentence embeddings of token ids (N, T) (pad id 0). Shape: (N, D)."""
        self.check_layer(layer)
        return self.embed(ids)


class TinyEncoder(EmbeddingModel):
    """Transformer sentence encoder with a classification head.

    Shape: ids (N, T) int64, pad 0 -> features (N, dim), forward (N, num_classes).
    Example: TinyEncoder(vocab_size=100, num_classes=3)(torch.tensor([[1, 5, 7, 0]])).shape == (1, 3)
    """

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64, layers: int = 2, heads: int = 4, max_length: int = 64, dropout: float = 0.1):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(max_length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        h = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        h = self.norm(self.encoder(h, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).float()
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return F.normalize(pooled, dim=-1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids) * self.head.in_features**0.5)
