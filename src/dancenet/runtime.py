"""Process-wide CPU settings that make PyTorch fast on small machines.

Called once by the CLI (and by benchmarks and tests) before any tensor is allocated; never at
import time.
"""

from __future__ import annotations

import contextlib
import functools
import os


def configure(num_threads: int | None = None) -> None:
    """Enable transparent huge pages for PyTorch's allocator and keep BLAS pools from fighting.

    PyTorch reads ``THP_MEM_ALLOC_ENABLE`` on its first large allocation; without it conv training
    on CPU spends ~45% of its time in page faults. numpy's BLAS threads compete with torch's
    intra-op threads, so BLAS is limited to one thread.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    if num_threads is not None:
        import torch  # only when asked: `dancenet info` and `prepare` need no torch at all

        torch.set_num_threads(num_threads)


def resolve_device(name: str | None):
    """``cpu`` by default; ``cuda`` only when present, else a clear error."""
    import torch

    from .errors import DancenetError

    if name in (None, "", "cpu"):
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DancenetError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise DancenetError(f"--device {name}: dancenet runs on cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DancenetError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DancenetError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                                "CUDA device(s)")
    return device


@contextlib.contextmanager
def torch_threads(count: int):
    """Run a block with ``count`` torch intra-op threads, restoring the previous count after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.lru_cache(maxsize=None)
def _native_bf16(device_type: str) -> bool:
    import torch

    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        # private but stable helpers (used by torch.compile's CPU backend); absent -> no
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def native_bf16(device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (AVX512-BF16 or AMX CPUs, CUDA GPUs with
    bf16). Elsewhere bf16 autocast is emulated and slower than float32, so models that ask for
    bf16 run in float32 there."""
    return _native_bf16(getattr(device, "type", str(device)))
