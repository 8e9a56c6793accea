"""The defense registry; kept apart so defense files can import it without cycles."""

from modelinv.registry import Registry

DEFENSES: Registry = Registry("defense")
