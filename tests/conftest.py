"""Shared fixtures: one model cache for the whole test session, and small trained models reused across tests.

Every test trains into and loads from the session's cache, so a model that several modules use (a LeNet,
an evaluator, a GAN) is trained once per session. A test whose point is what happens in an empty cache
(a first run trains, the second loads) uses `helpers.own_model_cache` for that part only.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ["MODELINV_QUIET"] = "1"


def share_of_the_cores() -> int:
    """Under pytest-xdist (`make test`: one worker per core), pin worker i to its own share of the cores
    (cores i, i + n, ...) and return how many it got; otherwise 2 (threads of a plain `pytest`).

    Every command a test invokes defaults to torch threads = the cores available to its process: without a
    share each of n workers would run n threads on n cores (4 threads on 2 cores), and every timing and the
    wall time of the suite would suffer from it. Subprocesses a test starts inherit the worker's share."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2 or not hasattr(os, "sched_setaffinity"):
        return 2
    cores = sorted(os.sched_getaffinity(0))
    share = set(cores[int(worker.removeprefix("gw")) % len(cores) :: count]) or set(cores)
    os.sched_setaffinity(0, share)
    return len(share)


torch.set_num_threads(share_of_the_cores())


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session trains into its own cache, never the user's; subprocesses inherit it."""
    path = tmp_path_factory.mktemp("modelinv-cache")
    old = os.environ.get("MODELINV_CACHE")
    os.environ["MODELINV_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MODELINV_CACHE", None)
    else:
        os.environ["MODELINV_CACHE"] = old


@pytest.fixture(autouse=True)
def keeps_the_session_cache(isolated_cache):
    """Fails a test that leaves $MODELINV_CACHE pointing elsewhere: later tests would retrain every model."""
    yield
    assert os.environ.get("MODELINV_CACHE") == str(isolated_cache), "a test changed $MODELINV_CACHE: use helpers.own_model_cache"


@pytest.fixture(scope="session")
def mnist_splits():
    """Same-distribution split of the real bundled MNIST subset."""
    from modelinv.data import load, make_splits

    return make_splits("same-distribution", load("mnist5k"), seed=0)


@pytest.fixture(scope="session")
def small_lenet(mnist_splits):
    """A LeNet trained briefly, as He et al. train theirs (no augmentation), on 1,500 private images of every class."""
    from modelinv.models.store import ModelRequest, train_or_load

    pick = torch.randperm(len(mnist_splits.private_train), generator=torch.Generator().manual_seed(0))[:1500]
    data = mnist_splits.private_train.subset(pick)
    request = ModelRequest(
        role="target",
        arch="lenet",
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        data_digest=data.digest(),
        seed=0,
        train={"epochs": 6, "augment_shift": 0},
    )
    model, _ = train_or_load(request, data)
    return model


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the tests of a module that asks for it (`pytestmark = pytest.mark.usefixtures("one_thread")`), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
