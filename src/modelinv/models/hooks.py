"""Any `nn.Module` as a model with cut layers: layers named by module path, read through forward hooks.

A user's own network (a plain PyTorch class, an ONNX graph converted by onnx2torch) is not re-architected
into named stages: `HookedNet` runs it as it is and reads the output of the module at a path such as
`features.3` with a forward hook. The cut layers are the module paths whose module runs exactly once per
forward pass, in the order their outputs are produced (found by one forward pass on zeros).

- `features(x, layer)` runs the model up to `layer`'s output (the rest is skipped), differentiably.
- `forward_from(h, layer)` runs the model on a placeholder input with `layer`'s output replaced by `h`.
  This is the server part f2 only when every path from the input to the output goes through `layer`
  (a bottleneck); the first use of a layer checks that on random inputs and refuses a layer that is
  bypassed (a skip connection around it), so a split defense or server-side white-box access never
  silently computes something else.
- Input normalisation is explicit: `normalize=(mean, std)` (scalars or one value per channel) is applied
  to the [0, 1] inputs before the model, `None` gives the model the inputs as they are. It is part of
  the model's `spec`, so it is recorded with every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet

Normalize = tuple[Sequence[float] | float, Sequence[float] | float] | None


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer's output is known."""


def check_normalize(normalize: Any, channels: int) -> tuple[list[float], list[float]] | None:
    """`normalize` as ([mean per channel], [std per channel]), or None; one-line errors for anything else.

    Example:
        >>> check_normalize((0.5, 0.5), 1)
        ([0.5], [0.5])
    """
    if normalize is None:
        return None
    if not isinstance(normalize, (list, tuple)) or len(normalize) != 2:
        raise ModelinvError(f"normalize must be None or (mean, std), not {normalize!r}")
    parts = []
    for name, value in zip(("mean", "std"), normalize):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ModelinvError(f"normalize {name} must be a number or one number per channel, not {value!r}")
        if len(values) == 1:
            values = values * channels
        if len(values) != channels:
            raise ModelinvError(f"normalize {name} has {len(values)} values; the inputs have {channels} channels")
        if name == "std" and not all(v > 0 for v in values):
            raise ModelinvError(f"normalize std must be positive, not {value!r}")
        if not all(abs(v) < float("inf") for v in values):
            raise ModelinvError(f"normalize {name} must be finite, not {value!r}")
        parts.append([float(v) for v in values])
    return parts[0], parts[1]


class HookedNet(LayeredNet):
    """A plain `nn.Module` whose cut layers are its module paths, read through forward hooks.

    Shape: x (N, *input_shape) in [0, 1] -> logits (N, num_classes); `features(x, layer)` -> the output of
    the module at path `layer`.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
        >>> hooked = HookedNet(net, (1, 28, 28), 10, normalize=(0.5, 0.5))
        >>> hooked.cut_layers
        ['0', '1', '2', '3']
        >>> hooked.features(torch.rand(2, 1, 28, 28), "1").shape
        torch.Size([2, 4, 26, 26])
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int], num_classes: int, normalize: Normalize = None, arch: str = "module", default_cut: str | None = None):
        nn.Module.__init__(self)
        self.model = model.eval()
        self.normalize = check_normalize(normalize, int(input_shape[0]) if len(input_shape) == 3 else 1)
        shape = (1, -1, 1, 1) if len(input_shape) == 3 else (1, -1)
        mean, std = self.normalize or ([0.0], [1.0])
        self.register_buffer("input_mean", torch.tensor(mean).reshape(shape), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).reshape(shape), persistent=False)
        self.input_shape = tuple(int(s) for s in input_shape)
        order, out = self._trace()
        if out.dim() != 2 or out.shape[1] != num_classes:
            raise ModelinvError(f"model '{arch}' returns shape {tuple(out.shape[1:])} per input; the data has {num_classes} classes")
        modules = dict(model.named_modules())
        self.stages = {name: modules[name] for name in order}  # a plain dict: the modules are registered under `model`
        self.leaves = [name for name in order if not any(True for _ in modules[name].children())]
        if not self.leaves:
            raise ModelinvError(f"model '{arch}' has no submodules to cut at: wrap its layers in modules (e.g. nn.Sequential)")
        self.embedding_layer = self.leaves[-2] if len(self.leaves) > 1 else self.leaves[-1]
        self.default_cut = default_cut
        if default_cut is not None:
            self.check_layer(default_cut)
        self.spec: dict[str, Any] = {"arch": arch, "args": {}, "input_shape": list(self.input_shape), "num_classes": int(num_classes), "normalize": self.normalize}
        self._bottlenecks: dict[str, bool] = {}

    def _trace(self) -> tuple[list[str], torch.Tensor]:
        """Module paths in the order their outputs are produced, keeping those that run exactly once."""
        calls: dict[str, int] = {}
        handles = []
        for name, module in self.model.named_modules():
            if name:
                handles.append(module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)))
        try:
            with torch.no_grad():
                out = self.model(self.prepare(torch.zeros(2, *self.input_shape)))  # cpu: at construction, before any move
        except ModelinvError:
            raise
        except Exception as err:  # the user's model fails on the data's shape: one line naming both
            raise ModelinvError(f"the model fails on inputs of shape {self.input_shape}: {' '.join(str(err).split())[:200]}") from None
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(out, torch.Tensor):
            raise ModelinvError(f"the model must return a tensor of logits, not {type(out).__name__}")
        return [name for name, count in calls.items() if count == 1], out

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input: `x` normalised as `normalize` says (unchanged when None)."""
        return x if self.normalize is None else (x - self.input_mean) / self.input_std

    @property
    def cut_layers(self) -> list[str]:
        return list(self.stages)

    def check_layer(self, layer: str) -> str:
        if layer not in self.stages:
            modules = dict(self.model.named_modules())
            why = " (it runs more than once per forward pass)" if layer in modules else ""
            raise ModelinvError(f"model '{self.arch}' has no layer '{layer}'{why} (cut layers: {', '.join(self.cut_layers)})")
        return layer

    def activations(self, x: torch.Tensor):
        """(name, output) of every cut layer in order, from one forward pass; the last is the model's output."""
        outputs: list[tuple[str, torch.Tensor]] = []
        handles = [self.stages[name].register_forward_hook(lambda m, i, o, name=name: outputs.append((name, o))) for name in self.stages]
        try:
            logits = self.model(self.prepare(x))
        finally:
            for handle in handles:
                handle.remove()
        yield from outputs
        if not outputs or outputs[-1][1] is not logits:
            yield "output", logits

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The output of the module at path `layer` (the forward pass stops there), differentiable."""
        module = self.stages[self.check_layer(layer)]
        captured: list[torch.Tensor] = []

        def hook(m, i, o):
            captured.append(o)
            raise _Stop

        handle = module.register_forward_hook(hook)
        try:
            self.model(self.prepare(x))
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ModelinvError(f"layer '{layer}' of model '{self.arch}' did not run on this input")
        return captured[0]

    def _replaced(self, h: torch.Tensor, layer: str) -> torch.Tensor:
        handle = self.stages[layer].register_forward_hook(lambda m, i, o: h)
        try:
            return self.model(self.prepare(torch.zeros(h.shape[0], *self.input_shape, dtype=h.dtype, device=h.device)))
        finally:
            handle.remove()

    def forward_from(self, h: torch.Tensor, layer: str) -> torch.Tensor:
        """Logits from `layer`'s output `h` (the server part): exact only at a bottleneck, which is checked once."""
        self.check_layer(layer)
        if layer not in self._bottlenecks:
            with torch.no_grad():
                x = torch.rand(4, *self.input_shape, generator=torch.Generator().manual_seed(0)).to(self.input_mean.device)
                self._bottlenecks[layer] = bool(torch.allclose(self._replaced(self.features(x, layer), layer), self.model(self.prepare(x)), rtol=1e-4, atol=1e-5))
        if not self._bottlenecks[layer]:
            raise ModelinvError(
                f"layer '{layer}' of model '{self.arch}' is not a split point: the output also depends on the input through paths around it "
                "(e.g. a skip connection); cut at a layer every path goes through"
            )
        return self._replaced(h, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(x))

    def client_stages(self, layer: str) -> list[str]:
        """The leaf modules whose outputs come before or at `layer`'s (f1's parameters)."""
        names = self.cut_layers
        done = names[: names.index(self.check_layer(layer)) + 1]
        return [name for name in done if name in self.leaves] or [layer]
