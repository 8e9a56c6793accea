"""Seeds: explicit `torch.Generator`s for every random draw, and `seeded` for the draws that cannot take one.

Random draws that take a generator (sampling, shuffling, augmentation) take one: an attack gets its own
`torch.Generator` from its seed, a trainer builds one from its seed. What cannot take a generator (the
initialisation of a new `nn.Module`, dropout, `spectral_norm`'s vectors, Opacus's noise) uses the global
random state; code that creates or trains modules does so inside `seeded(seed)`, which seeds torch's,
NumPy's and Python's global generators for the block and gives the caller's states back afterwards. A
library call therefore never changes its caller's random state.

`seed_everything` sets the global states for good; only a program's entry point (the experiment runner,
`modelinv serve`) should call it, once, for what still reads the global state outside any `seeded` block
(the noise of output defenses).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def derive_seed(gen: torch.Generator) -> int:
    """A seed in [0, 2^31 - 1) drawn from `gen`: one draw, so the same generator state always gives the same seed."""
    return int(torch.randint(2**31 - 1, (1,), generator=gen))


@contextmanager
def seeded(seed: int | torch.Generator | None) -> Iterator[None]:
    """Run the block with the global random states of torch (CPU, and CUDA if initialised), NumPy and Python
    seeded from `seed` (a generator gives one `derive_seed` draw), then restore the caller's states.

    `seeded(None)` seeds nothing: it only isolates, so that whatever the block draws or reseeds (a callee that
    calls `seed_everything`) leaves the caller's states as they were.
    """
    if isinstance(seed, torch.Generator):
        seed = derive_seed(seed)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        try:
            if seed is not None:
                random.seed(seed)
                np.random.seed(seed % 2**32)
                torch.random.default_generator.manual_seed(seed)  # as torch.manual_seed, without queueing a seed for CUDA
                if cuda:
                    torch.cuda.manual_seed_all(seed)
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch globally, for good; return a torch.Generator seeded the same way.

    For a program's entry point only (see the module docstring); library code uses `seeded`.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
