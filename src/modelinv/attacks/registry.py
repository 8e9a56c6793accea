"""The attack registry; kept apart so attack files can import it without cycles."""

from modelinv.registry import Registry

ATTACKS: Registry = Registry("attack")
