"""An untrusted TorchScript model, run in a confined worker process and used through a pipe.

TorchScript is code: a scripted `forward` may call `torch.save` (writes any file the process may write),
`torch.from_file` (reads one), or loop forever. Loading it with `torch.jit.load` in the auditing process
gives that code the user's rights. modelinv therefore loads TorchScript only when the user says they
trust it (`--trust-model-code`, config `target.trust_code: true`), and even then runs it in a worker
process (`modelinv.models.contained_worker`) that:

- runs in its own fresh, empty temporary working directory (also its HOME and TMPDIR), removed afterwards;
- inherits no file descriptor but its socket to this process (stdin and stdout are /dev/null);
- is refused, by Linux Landlock where the kernel has it (5.13+), every file write, creation, rename,
  removal and truncation outside that directory, every exec, and (Landlock ABI 4+) every TCP connect/bind;
- runs as uid/gid 65534 (nobody) without groups when modelinv runs as root;
- is refused socket creation, exec, ptrace, mount, namespaces, bpf, kernel modules and perf events by a
  seccomp filter (Linux x86_64 and aarch64);
- may write at most 64 MiB per file (RLIMIT_FSIZE) and dumps no core;
- never sees the model's path: the bytes are sent over the socket.
The steps that took effect on this machine are in the model's spec (`spec["contained"]`) and so in every
result row's target description; on a platform without Landlock the worker still has its own process,
empty working directory and closed descriptors, but may write wherever its user may.

What this does NOT stop: the model may still read files its user may read (Landlock restricts only writes
here; as root the worker is nobody, which cannot read private files), use CPU and memory until the call
times out (`timeout`, default 600 s), return wrong or adversarial numbers (the attack results are then
wrong, not dangerous: the answers are parsed as JSON and safetensors, never unpickled), or exploit a bug
in the kernel or in torch's TorchScript interpreter. It is containment, not a proof: audit only models
whose origin you accept, and prefer ONNX (`modelinv.models.onnx`), which is data, not code.

What a contained model supports: forward passes at every stage (the children of a scripted
`nn.Sequential`, else one stage `output`), and vector-Jacobian products with respect to the input of a
stage range, computed in the worker. So black-box access (probabilities, logits, labels), split-layer
features, and white-box attacks that differentiate through the model (rMLE, MI-Face, the GAN attacks)
work. The weights never leave the worker: attacks that copy or retrain the model (the shadow attack) and
training-time defenses are refused with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from modelinv.errors import ModelinvError
from modelinv.models.layered import LayeredNet

WORKER = Path(__file__).with_name("contained_worker.py")
MAX_HEADER = 2**20
MAX_PAYLOAD = 2**34
NOBODY = 65534


class _Worker:
    """The worker process and its socket; `call` sends one request and returns the answer's tensors."""

    def __init__(self, timeout: float):
        self.root = Path(tempfile.mkdtemp(prefix="modelinv-contained-"))
        self.workdir = self.root / "work"
        self.workdir.mkdir()
        if hasattr(os, "getuid") and os.getuid() == 0:
            os.chown(self.workdir, NOBODY, NOBODY)
            os.chmod(self.root, 0o711)
        parent, child = socket.socketpair()
        self.sock = parent
        self.stderr = open(self.root / "stderr.log", "wb")  # the parent's file; the worker cannot reopen it
        env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "LD_LIBRARY_PATH")}
        env.update(HOME=str(self.workdir), TMPDIR=str(self.workdir), PATH="/usr/bin:/bin")
        threads = torch.get_num_threads()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-B", str(WORKER), str(child.fileno()), str(self.workdir), str(threads)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.stderr,
                cwd=self.workdir,
                env=env,
                close_fds=True,
                pass_fds=(child.fileno(),),
            )
        finally:
            child.close()
        self.sock.settimeout(timeout)
        self._finalizer = weakref.finalize(self, _shutdown, self.process, self.sock, self.stderr, self.root)

    def close(self) -> None:
        self._finalizer()

    def _read(self, n: int) -> bytes:
        chunks, got = [], 0
        try:
            while got < n:
                chunk = self.sock.recv(min(n - got, 2**20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                got += len(chunk)
        except (EOFError, OSError) as err:
            raise ModelinvError(self.failure("timed out" if isinstance(err, TimeoutError) else "stopped")) from None
        return b"".join(chunks)

    def failure(self, what: str) -> str:
        self.process.poll()
        tail = ""
        try:
            lines = (self.root / "stderr.log").read_bytes()[-4000:].decode(errors="replace").strip().splitlines()
            tail = f": {' '.join(lines[-1].split())[:200]}" if lines else ""
        except OSError:
            pass
        code = f" (exit code {self.process.returncode})" if self.process.returncode is not None else ""
        return f"the contained model's worker {what}{code}{tail}"

    def receive(self) -> tuple[dict[str, Any], bytes]:
        """One answer: a JSON header and a payload, both bounded; nothing in them is unpickled."""
        (size,) = struct.unpack(">Q", self._read(8))
        if size > MAX_HEADER:
            raise ModelinvError(self.failure("sent a malformed answer"))
        try:
            header = json.loads(self._read(size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelinvError(self.failure("sent a malformed answer")) from None
        (size,) = struct.unpack(">Q", self._read(8))
        if size > MAX_PAYLOAD or not isinstance(header, dict):
            raise ModelinvError(self.failure("sent a malformed answer"))
        payload = self._read(size)
        if not header.get("ok"):
            raise ModelinvError(f"the contained model failed: {str(header.get('error', 'no reason given'))[:400]}")
        return header, payload

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        blob = json.dumps(header).encode()
        try:
            self.sock.sendall(struct.pack(">Q", len(blob)) + blob + struct.pack(">Q", len(payload)) + payload)
        except OSError:
            raise ModelinvError(self.failure("stopped")) from None

    def call(self, op: str, layer: str, **tensors: torch.Tensor) -> torch.Tensor:
        self.send({"op": op, "layer": layer}, save_tensors({k: v.detach().float().contiguous() for k, v in tensors.items()}))
        _, payload = self.receive()
        try:
            out = load_tensors(payload)["y"]
        except Exception:  # safetensors reports malformed payloads with several exception types
            raise ModelinvError(self.failure("sent a malformed answer")) from None
        if not out.is_floating_point():
            raise ModelinvError(self.failure("sent a non-float tensor"))
        return out


def _shutdown(process: subprocess.Popen, sock: socket.socket, stderr, root: Path) -> None:
    try:
        sock.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr.close()
        shutil.rmtree(root, ignore_errors=True)


class _Remote(torch.autograd.Function):
    """A stage range computed in the worker; its backward is the worker's vector-Jacobian product."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, worker: _Worker, op: str, layer: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.worker, ctx.op, ctx.layer = worker, op, layer
        return worker.call(op, layer, x=x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        dx = ctx.worker.call(f"vjp_{ctx.op}", ctx.layer, x=x, g=grad)
        if dx.shape != x.shape:
            raise ModelinvError(ctx.worker.failure(f"returned a gradient of shape {tuple(dx.shape)} for an input of shape {tuple(x.shape)}"))
        return dx, None, None, None


class _Stage(nn.Module):
    """Stands for a stage that lives in the worker; holds an empty marker parameter when the real stage has
    parameters, so schedules that count parametric layers (rMLE's cut depth) see the model as it is."""

    def __init__(self, parametric: bool):
        super().__init__()
        if parametric:
            self.marker = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ModelinvError("a contained model's stages run in its worker, not in this process")


class ContainedNet(LayeredNet):
    """A TorchScript file run in a confined worker (see the module docstring): forward passes and input gradients.

    Shape: x (N, *input_shape) in [0, 1] -> logits (N, num_classes); the inputs are normalised here (identity
    unless `input_mean`/`input_std` are set, see `models.user.set_normalize`), then sent to the worker.

    Example:
        >>> net = ContainedNet(Path("model.pt"), (1, 28, 28), 10)  # doctest: +SKIP
        >>> net.features(torch.rand(4, 1, 28, 28), "2").shape  # doctest: +SKIP
    """

    def __init__(self, path: Path, input_shape: tuple[int, ...], num_classes: int, timeout: float = 600.0):
        path = Path(path)
        data = path.read_bytes()
        worker = _Worker(timeout)
        try:
            hello, _ = worker.receive()
            worker.send({"op": "load"}, data)
            try:
                info, _ = worker.receive()
            except ModelinvError as err:
                raise ModelinvError(f"not a TorchScript file: {path} ({str(err).removeprefix('the contained model failed: ')[:160]})") from None
        except BaseException:
            worker.close()
            raise
        stages = [(name, _Stage(name in info["parametric"])) for name in info["stages"]]
        super().__init__(stages, embedding_layer=stages[-2][0] if len(stages) > 1 else stages[-1][0], mean=0.0, std=1.0)
        self.worker = worker
        self.register_buffer("source_sha256", torch.tensor(list(hashlib.sha256(data).digest()), dtype=torch.uint8))
        self.contained = [str(step) for step in hello.get("contained", [])]

    def close(self) -> None:
        """Stop the worker and remove its directory (also done when the model is garbage-collected)."""
        self.worker.close()

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        return _Remote.apply((x - self.input_mean) / self.input_std, self.worker, "features", self.check_layer(layer))

    def forward_from(self, h: torch.Tensor, layer: str) -> torch.Tensor:
        self.check_layer(layer)
        if layer == self.cut_layers[-1]:
            return h
        return _Remote.apply(h, self.worker, "forward_from", layer)

    def activations(self, x: torch.Tensor):
        for name in self.cut_layers:
            yield name, self.features(x, name)

    def __deepcopy__(self, memo):
        raise ModelinvError(
            "this attack copies the model's weights; a contained TorchScript model gives forward passes and input gradients only "
            "(export it to ONNX for full white-box access)"
        )

    def __reduce_ex__(self, protocol):
        raise ModelinvError("a contained TorchScript model cannot be sent to another process; it lives with its worker")
