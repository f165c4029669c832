"""Small file utilities every layer uses: atomic writes and the metadata stamped on every result file."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so an interrupted
    write never leaves a partial file behind. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def optimizer_to_tensors(optimizer: "torch.optim.Optimizer") -> tuple[dict[str, "torch.Tensor"], list[dict]]:
    """An optimizer's state as flat ``{"<param index>.<key>": tensor}`` (for safetensors) plus its param groups
    (JSON-serialisable); scalars such as Adam's ``step`` become 0-d tensors."""
    import torch

    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def optimizer_from_tensors(tensors: dict[str, "torch.Tensor"], groups: list[dict]) -> dict:
    """The inverse of :func:`optimizer_to_tensors`: a state dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}


def git_commit(short: bool = True) -> str:
    """``$LINSEQ_COMMIT`` when set (copies of the tree without their own history, e.g. on the GPU machine),
    else the checkout's HEAD commit (with ``+dirty`` when the tree has changes), or ``"unknown"`` outside git."""
    if os.environ.get("LINSEQ_COMMIT"):
        return os.environ["LINSEQ_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short" if short else "--verify", "HEAD"],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: "str | None" = None) -> str:
    """Human-readable name of the device results come from (GPU model, or the CPU)."""
    import torch

    if (device is None and torch.cuda.is_available()) or (device is not None and str(device).startswith("cuda")):
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run_metadata(seed: int | None = None, device: "str | None" = None, **extra: Any) -> dict[str, Any]:
    """The stamp every result JSON carries: device, versions, commit, date and seed."""
    import torch

    meta: dict[str, Any] = {
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    if seed is not None:
        meta["seed"] = seed
    meta.update(extra)
    return meta
