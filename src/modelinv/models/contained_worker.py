"""The worker process that runs an untrusted TorchScript model (started by `modelinv.models.contained`).

Run as a script (`python -I contained_worker.py FD WORKDIR THREADS`), never imported by modelinv: it
confines itself before it imports torch or sees the model, so every thread torch starts later inherits
the confinement. In order:

1. its working directory is WORKDIR, a fresh empty temporary directory; it inherits no file descriptor but
   the socket FD to its parent (the parent starts it with `close_fds`), and stdin/stdout are /dev/null;
2. resource limits: no core dumps, files it writes capped at 64 MiB (RLIMIT_FSIZE);
3. Linux Landlock (kernel 5.13+), where the kernel has it: no file may be written, created, renamed,
   removed or truncated outside WORKDIR; reads only beneath Python's own folders (sys.path, the prefixes),
   /usr, /lib*, WORKDIR and a few files torch reads (/proc/self, /proc/cpuinfo, /sys/devices/system/cpu,
   /dev/null, /dev/urandom, ...); no program executed; no TCP connection or bind (ABI 4+); no signal or
   abstract unix socket outside the worker (ABI 6+);
4. it imports torch; then, when it runs as root and uid nobody can read Python's standard library, it
   drops to uid/gid 65534 (nobody) with no groups;
5. a seccomp filter (x86_64, aarch64) refuses socket creation, exec, ptrace, mount, namespaces, bpf,
   kernel modules, keyrings, perf events, and the metadata changes Landlock does not cover (chmod, chown,
   extended attributes, file times), in every thread (TSYNC).

Then it receives the model's bytes over the socket (it never opens the model file itself) and answers
forward passes and vector-Jacobian products. Messages are a JSON header and a safetensors payload, so the
parent never unpickles anything the model could have influenced. Which steps took effect is reported in
the first message and recorded with the model.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import signal
import socket
import struct
import sys

FSIZE_LIMIT = 64 * 2**20
NOBODY = 65534
MAX_HEADER = 2**20

# Landlock (include/uapi/linux/landlock.h)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_WRITES = sum(1 << b for b in (4, 5, 6, 7, 8, 9, 10, 11, 12))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
PR_SET_NO_NEW_PRIVS = 38

# seccomp: syscalls refused with EPERM, per architecture (AUDIT_ARCH value, seccomp syscall number, denied numbers)
SECCOMP_ARCHES = {
    # socket, execve, execveat, ptrace, process_vm_readv/writev, mount, umount2, unshare, setns, bpf, keyctl, add_key,
    # init_module, finit_module, kexec_load, userfaultfd, perf_event_open, chroot, pivot_root, then metadata changes
    # Landlock does not cover (chmod, chown, xattrs, times), open_by_handle_at, reboot, swapon/off, clock and host names
    "x86_64": (
        0xC000003E,
        317,
        [41, 59, 322, 101, 310, 311, 165, 166, 272, 308, 321, 250, 248, 175, 313, 246, 323, 298, 161, 155]
        + [90, 91, 268, 452, 92, 93, 94, 260, 188, 189, 190, 197, 198, 199, 132, 235, 280, 261, 304, 169, 167, 168, 164, 227, 170, 171],
    ),
    "aarch64": (
        0xC00000B7,
        277,
        [198, 221, 281, 117, 270, 271, 40, 39, 97, 268, 280, 219, 217, 105, 273, 104, 282, 241, 51, 41]
        + [52, 53, 452, 55, 54, 5, 6, 7, 14, 15, 16, 88, 265, 142, 224, 225, 170, 112, 161, 162],
    ),
}


def readable_paths(workdir: str) -> list[str]:
    """What the worker may read: Python and its packages, system libraries, a few files torch reads, its workdir."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__), workdir, "/usr", "/lib", "/lib32", "/lib64"}
    paths.update(p for p in sys.path if p)
    paths.update(("/etc/ld.so.cache", "/etc/localtime", "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"))
    paths.update(("/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/shm"))
    return sorted(os.path.realpath(p) for p in paths if os.path.exists(p))


def landlock(workdir: str) -> str | None:
    """Confine writes to `workdir`, reads to `readable_paths`, and refuse exec, TCP and signals, with Landlock;
    the ABI version applied, or None where the kernel has no Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return None
    writes = FS_WRITE_FILE | FS_WRITES | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    fs = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR | writes
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.c_char_p(attr), ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return None
    try:
        for path in readable_paths(workdir):
            rights = FS_READ_FILE | FS_READ_DIR | (writes if path == os.path.realpath(workdir) else 0)
            if not os.path.isdir(path):
                rights &= FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # the rights a rule on a file may carry
            handle = os.open(path, os.O_PATH)
            try:
                if libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.c_char_p(struct.pack("=Qi", rights, handle)), ctypes.c_uint32(0)) != 0:
                    return None
            finally:
                os.close(handle)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return None
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return None
    finally:
        os.close(ruleset)
    return f"landlock-abi{abi}"


def seccomp() -> str | None:
    """Refuse dangerous syscalls (socket, exec, ptrace, mount, ...) in every thread; 'seccomp' if installed."""
    arch = SECCOMP_ARCHES.get(platform.machine())
    if arch is None:
        return None
    audit_arch, sys_seccomp, denied = arch
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS: another architecture's calling convention
    prog = [(ld_w_abs, 0, 0, 4), (jeq_k, 1, 0, audit_arch), (ret_k, 0, 0, kill), (ld_w_abs, 0, 0, 0)]
    if audit_arch == 0xC000003E:  # x32 system calls on x86_64 carry bit 30: refuse them all
        prog.append((jge_k, len(denied) + 1, 0, 0x40000000))
    for i, nr in enumerate(denied):
        prog.append((jeq_k, len(denied) - i, 0, nr))
    prog += [(ret_k, 0, 0, allow), (ret_k, 0, 0, deny)]
    filters = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(buffer))  # struct sock_fprog (native alignment)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return None
    if libc.syscall(sys_seccomp, ctypes.c_uint(1), ctypes.c_uint(1), ctypes.c_char_p(fprog)) != 0:  # SET_MODE_FILTER, FLAG_TSYNC
        return None
    return "seccomp"


def confine(workdir: str) -> list[str]:
    """Steps 1-3 (before torch is imported); returns the names of those that took effect."""
    os.chdir(workdir)
    os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG instead of killing the worker
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    applied = ["own-process", "empty-cwd", "no-inherited-fds", "fsize-64MiB"]
    ruleset = landlock(workdir) if sys.platform == "linux" else None
    if ruleset:
        applied.append(ruleset)
    return applied


def world_readable(path: str) -> bool:
    """Whether uid nobody could read `path` (each folder on the way traversable, the file readable by others)."""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        mode = os.stat(os.sep.join(parts[:i]) or os.sep).st_mode
        if not mode & (0o001 if i < len(parts) else 0o004):
            return False
    return True


def drop_privileges() -> str | None:
    """Step 4: uid/gid nobody when running as root, if nobody can still read Python's standard library
    (lazy imports happen after the drop); else the worker stays root, confined by Landlock and seccomp."""
    if not hasattr(os, "getuid") or os.getuid() != 0 or not world_readable(os.__file__):
        return None
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return "uid-nobody"


def read_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 2**20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[dict, bytes]:
    (size,) = struct.unpack(">Q", read_exact(sock, 8))
    if size > MAX_HEADER:
        raise ValueError("header too large")
    header = json.loads(read_exact(sock, size))
    (size,) = struct.unpack(">Q", read_exact(sock, 8))
    return header, read_exact(sock, size)


def send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    blob = json.dumps(header).encode()
    sock.sendall(struct.pack(">Q", len(blob)) + blob + struct.pack(">Q", len(payload)) + payload)


def serve(sock: socket.socket, applied: list[str]) -> None:
    """Load the model sent by the parent, then answer forward passes and vector-Jacobian products."""
    import io

    import torch
    from safetensors.torch import load as load_tensors
    from safetensors.torch import save as save_tensors

    send(sock, {"ok": True, "contained": applied})
    header, payload = receive(sock)
    model = torch.jit.load(io.BytesIO(payload), map_location="cpu")
    children = list(model.named_children()) if model.original_name == "Sequential" else []
    stages = children if len(children) > 1 else [("output", model)]
    names = [name for name, _ in stages]
    parametric = [name for name, stage in stages if any(True for _ in stage.parameters())]
    model.eval()
    send(sock, {"ok": True, "stages": names, "parametric": parametric})

    def run(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for _, stage in stages[start:stop]:
            x = stage(x)
        return x

    while True:
        try:
            header, payload = receive(sock)
        except EOFError:
            return
        op, layer = header.get("op"), header.get("layer")
        if op == "close":
            return
        try:
            tensors = load_tensors(payload)
            cut = names.index(layer) + 1
            start, stop = (0, cut) if op in ("features", "vjp_features") else (cut, len(stages))
            x = tensors["x"]
            if op in ("features", "forward_from"):
                with torch.no_grad():
                    out = {"y": run(x, start, stop).contiguous()}
            else:
                x.requires_grad_(True)
                with torch.enable_grad():
                    (grad,) = torch.autograd.grad(run(x, start, stop), x, tensors["g"])
                out = {"y": grad.contiguous()}
            send(sock, {"ok": True}, save_tensors(out))
        except Exception as err:  # the model's own failure: reported to the parent as one line
            send(sock, {"ok": False, "error": " ".join(f"{type(err).__name__}: {err}".split())[:400]})


def main() -> None:
    fd, workdir, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    applied = confine(workdir)
    import torch  # noqa: F401  (imported confined: every thread torch starts inherits the confinement)

    torch.set_num_threads(threads)
    for step in (drop_privileges(), seccomp()):
        if step:
            applied.append(step)
    sock = socket.socket(fileno=fd)
    try:
        serve(sock, applied)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
