"""Byte-level text corpora for language modeling: the embedded default (this Python's own standard-library sources),
user files or folders, a deterministic train/validation split, and window sampling."""

from __future__ import annotations

import codecs
import hashlib
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import torch

VOCAB_SIZE = 256
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", ".git", ".hg", ".svn", "node_modules"}
_FILE_SEPARATOR = b"\n\n"


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255: no vocabulary file, no unknown tokens, one token per byte (so loss in
    bits per token is bits per byte)."""

    vocab_size = VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        """``text -> [n_bytes]`` token ids."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        return list(text.encode("utf-8"))

    def decode(self, ids: "list[int] | torch.Tensor") -> str:
        """Token ids -> text; invalid UTF-8 sequences become U+FFFD."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> "codecs.IncrementalDecoder":
        """An incremental decoder: feed it one byte at a time and print what it returns (multi-byte characters
        appear once complete)."""
        return codecs.getincrementaldecoder("utf-8")(errors="replace")


@dataclass
class TextCorpus:
    """Token ids of a corpus split into train and validation parts (uint8 tensors ``[n_bytes]``)."""

    train: torch.Tensor
    val: torch.Tensor
    source: str
    num_files: int
    num_val_files: int
    files_sample: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "source": self.source, "files": self.num_files, "val_files": self.num_val_files,
            "train_bytes": int(self.train.numel()), "val_bytes": int(self.val.numel()),
        }


def stdlib_source_files() -> tuple[Path, list[Path]]:
    """The running Python's standard-library ``.py`` files (site-packages excluded), sorted. Returns (root, files)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return root, _walk(root, suffixes=(".py",))


def _walk(root: Path, suffixes: tuple[str, ...] | None) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if suffixes is None or name.endswith(suffixes):
                files.append(Path(dirpath) / name)
    return files


def _read_text_bytes(path: Path) -> bytes | None:
    """File contents if it looks like text (no NUL byte, valid UTF-8), else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return data


def _is_val_file(rel: str, val_fraction: float) -> bool:
    digest = hashlib.sha1(rel.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def load_text_corpus(
    data: str | os.PathLike | None = None,
    val_fraction: float = 0.05,
    max_bytes: int | None = None,
) -> TextCorpus:
    """Read a corpus and split it deterministically into train and validation bytes.

    Args:
        data: a text file or a folder (all UTF-8 text files below it, hidden ones skipped); None means the embedded
            default, this Python's standard-library ``.py`` sources.
        val_fraction: share of files (chosen by a hash of their relative path, so the split does not depend on the
            order files are found) for validation; a single file is split by its last bytes instead.
        max_bytes: stop reading after this many bytes (files in sorted order), or None for all.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: no text found, or a bad ``val_fraction``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction!r}")
    if data is None:
        root, files = stdlib_source_files()
        source = f"Python {sysconfig.get_python_version()} standard library ({root})"
    else:
        root = Path(data).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--data path does not exist: {root}")
        files = [root] if root.is_file() else _walk(root, suffixes=None)
        source = str(root)
        if root.is_file():
            root = root.parent
    train_parts: list[bytes] = []
    val_parts: list[bytes] = []
    total = n_files = n_val = 0
    sample: list[str] = []
    for path in files:
        text = _read_text_bytes(path)
        if not text or not text.strip():
            continue
        rel = path.relative_to(root).as_posix()
        n_files += 1
        if len(sample) < 5:
            sample.append(rel)
        if _is_val_file(rel, val_fraction):
            val_parts.append(text)
            n_val += 1
        else:
            train_parts.append(text)
        total += len(text)
        if max_bytes is not None and total >= max_bytes:
            break
    if n_files == 0:
        raise ValueError(f"empty corpus: no UTF-8 text files with content found in {source}")
    train_bytes = _FILE_SEPARATOR.join(train_parts)
    val_bytes = _FILE_SEPARATOR.join(val_parts)
    if not val_parts or not train_parts:  # one file, or an unlucky split: cut the bytes instead
        joined = _FILE_SEPARATOR.join(train_parts + val_parts)
        cut = int(len(joined) * (1.0 - val_fraction))
        train_bytes, val_bytes = joined[:cut], joined[cut:]
        n_val = 0
    return TextCorpus(
        train=torch.frombuffer(bytearray(train_bytes), dtype=torch.uint8),
        val=torch.frombuffer(bytearray(val_bytes), dtype=torch.uint8),
        source=source, num_files=n_files, num_val_files=n_val, files_sample=sample,
    )


def sample_windows(tokens: torch.Tensor, batch_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``length`` tokens from ``tokens [N]``: ``[batch_size, length]`` int64."""
    if tokens.numel() < length + 1:
        raise ValueError(f"corpus part of {tokens.numel()} bytes is shorter than one window of {length + 1} bytes")
    starts = torch.randint(0, tokens.numel() - length + 1, (batch_size,), generator=generator)
    idx = starts[:, None] + torch.arange(length)[None, :]
    return tokens[idx].long()


def evenly_spaced_windows(tokens: torch.Tensor, count: int, length: int) -> torch.Tensor:
    """``count`` windows of ``length`` tokens spread evenly over ``tokens [N]`` (a fixed validation set):
    ``[count, length]`` int64."""
    if tokens.numel() < length:
        raise ValueError(f"validation part of {tokens.numel()} bytes is shorter than one window of {length} bytes")
    last = tokens.numel() - length
    starts = torch.linspace(0, last, count).long() if count > 1 else torch.zeros(1, dtype=torch.long)
    idx = starts[:, None] + torch.arange(length)[None, :]
    return tokens[idx].long()
