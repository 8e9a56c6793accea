"""The model registry; kept apart so architecture files can import it without cycles."""

from modelinv.registry import Registry

MODELS: Registry = Registry("model")
