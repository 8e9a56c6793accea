"""modelinv: attack, defend and audit neural networks against model inversion.

`modelinv.audit(model, ...)` and `modelinv.run(model, ...)` (see `modelinv.api`) audit or attack any `nn.Module`
or model file from Python; they are imported on first use, so `import modelinv` stays fast.
"""

__version__ = "0.1.0"
__all__ = ["Results", "audit", "run"]


def __getattr__(name: str) -> object:
    """`audit`, `run` and `Results` from `modelinv.api`, imported lazily (torch and the pipeline load on first use)."""
    if name in __all__:
        from modelinv import api

        return getattr(api, name)
    raise AttributeError(f"module 'modelinv' has no attribute '{name}'")
