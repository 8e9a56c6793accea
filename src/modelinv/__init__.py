"""modelinv: attack, defend and audit neural networks against model inversion."""

__version__ = "0.1.0"
