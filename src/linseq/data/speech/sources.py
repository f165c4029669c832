"""Build-time access to the offline audio sources: Debian packages, ffmpeg decoding, espeak-ng synthesis.

Only :mod:`linseq.data.speech.build` uses this module. It needs ``apt-get``/``dpkg-deb`` (to fetch packages),
``ffmpeg`` (to decode G.722, Ogg and WAV and resample to 16 kHz) and ``espeak-ng``; every missing tool is reported
by name. Packages are downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache folder,
so nothing but the two tools is installed system-wide.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE

__all__ = [
    "DATA_PACKAGES", "TOOLS", "BuildError", "ensure_tools", "ensure_packages", "ffmpeg_decode", "ffmpeg_decode_many",
    "espeak_synthesise", "espeak_variants", "opensfx_entries", "tool_versions",
]

# Debian bookworm packages whose files the pools are made of (all architecture-independent data, except alsa-utils
# which only contributes Noise.wav)
DATA_PACKAGES = (
    "asterisk-core-sounds-en-g722", "asterisk-core-sounds-es-g722", "asterisk-core-sounds-fr-g722",
    "asterisk-core-sounds-it-g722", "asterisk-core-sounds-ru-g722", "asterisk-moh-opsound-g722",
    "ktuberling-data", "klettres-data", "sound-theme-freedesktop", "sound-icons", "openttd-opensfx", "alsa-utils",
    "wamerican",
)
# command -> Debian package that provides it
TOOLS = {"ffmpeg": "ffmpeg", "espeak-ng": "espeak-ng", "dpkg-deb": "dpkg", "apt-get": "apt"}


class BuildError(RuntimeError):
    """A build step cannot run (a tool or package is missing); the message says what to install."""


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, **kw)


def ensure_tools(install: bool, tools: Iterable[str] = ("ffmpeg", "espeak-ng")) -> None:
    """Make sure the command-line ``tools`` exist; with ``install`` run ``apt-get install`` for the missing ones."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    pkgs = sorted({TOOLS.get(t, t) for t in missing})
    hint = "apt-get install -y --no-install-recommends " + " ".join(pkgs)
    if not install:
        raise BuildError(f"missing command(s) {', '.join(missing)}; install them with `{hint}` or pass install=True")
    if shutil.which("apt-get") is None:
        raise BuildError(f"missing command(s) {', '.join(missing)} and no apt-get to install them ({hint})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs], env=env)
    if r.returncode != 0:
        _run(["apt-get", "update", "-q"], env=env)
        r = _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs], env=env)
    still = [t for t in missing if shutil.which(t) is None]
    if r.returncode != 0 or still:
        raise BuildError(f"`{hint}` failed (are you root, is the Debian archive reachable?): "
                         f"{r.stderr.decode(errors='replace').strip().splitlines()[-1:]}")


def _installed_version(pkg: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    r = _run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg])
    if r.returncode != 0:
        return None
    status, _, version = r.stdout.decode().partition("\t")
    return version if status.endswith("installed") and not status.endswith("not-installed") else None


def ensure_packages(cache_dir: Path, install: bool, packages: Iterable[str] = DATA_PACKAGES) -> tuple[dict[str, Path], dict[str, str]]:
    """Locate the files of each Debian data package: unpacked in ``cache_dir/root`` (downloaded with
    ``apt-get download`` when ``install``) or installed on the system. Returns ``({pkg: root}, {pkg: version})``
    where the package's files live under ``root`` (e.g. ``root/usr/share/...``)."""
    cache_dir = Path(cache_dir)
    root = cache_dir / "root"
    debs = cache_dir / "debs"
    roots: dict[str, Path] = {}
    versions: dict[str, str] = {}
    missing = []
    for pkg in packages:
        marker = root / ".linseq-unpacked" / pkg
        if marker.is_file():
            roots[pkg], versions[pkg] = root, marker.read_text().strip()
            continue
        v = _installed_version(pkg)
        if v is not None:
            roots[pkg], versions[pkg] = Path("/"), v
            continue
        missing.append(pkg)
    if not missing:
        return roots, versions
    hint = "apt-get download " + " ".join(missing)
    if not install:
        raise BuildError(f"missing Debian package(s) {', '.join(missing)}; pass install=True to fetch them "
                         f"(`{hint}` + `dpkg-deb -x`) or install them with apt-get")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise BuildError(f"fetching {', '.join(missing)} needs {tool}, which is missing (this builder needs a Debian system)")
    debs.mkdir(parents=True, exist_ok=True)
    r = _run(["apt-get", "download", *missing], cwd=debs)
    if r.returncode != 0:
        _run(["apt-get", "update", "-q"])
        r = _run(["apt-get", "download", *missing], cwd=debs)
    if r.returncode != 0:
        raise BuildError(f"`{hint}` failed: {r.stderr.decode(errors='replace').strip()[-400:]}")
    (root / ".linseq-unpacked").mkdir(parents=True, exist_ok=True)
    for pkg in missing:
        cands = sorted(debs.glob(f"{pkg}_*.deb"))
        if not cands:
            raise BuildError(f"`{hint}` left no {pkg}_*.deb in {debs}")
        deb = cands[-1]
        r = _run(["dpkg-deb", "-x", str(deb), str(root)])
        if r.returncode != 0:
            raise BuildError(f"dpkg-deb -x {deb} failed: {r.stderr.decode(errors='replace').strip()}")
        version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.decode().strip()
        (root / ".linseq-unpacked" / pkg).write_text(version + "\n")
        roots[pkg], versions[pkg] = root, version
    return roots, versions


def ffmpeg_decode(src: str | os.PathLike | bytes, input_format: str | None = None,
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file (path) or in-memory file (bytes) with ffmpeg to mono float32 ``[T]`` at ``sample_rate``.
    ``input_format`` forces a demuxer (``"g722"`` for raw G.722)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    if input_format:
        cmd += ["-f", input_format]
    data = None
    if isinstance(src, (bytes, bytearray)):
        cmd += ["-i", "pipe:0"]
        data = bytes(src)
    else:
        cmd += ["-i", str(src)]
    cmd += ["-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    r = subprocess.run(cmd, input=data, capture_output=True, stdin=None if data is not None else subprocess.DEVNULL)
    if r.returncode != 0:
        raise BuildError(f"ffmpeg could not decode {src if data is None else '<bytes>'}: "
                         f"{r.stderr.decode(errors='replace').strip()[-300:]}")
    return np.frombuffer(r.stdout, dtype=np.float32).copy()


def ffmpeg_decode_many(paths: list[Path], workers: int = 2, progress: Callable[[int], None] | None = None,
                       input_format: str | None = None) -> list[np.ndarray]:
    """Decode many files in a small thread pool (each call is one ffmpeg process); order is kept."""
    out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(paths)

    def job(i: int) -> None:
        out[i] = ffmpeg_decode(paths[i], input_format)
        if progress:
            progress(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        list(ex.map(job, range(len(paths))))
    return out


def espeak_variants() -> set[str]:
    """Names of the installed espeak-ng voice variants (``+name``)."""
    r = _run(["espeak-ng", "--voices=variant"])
    names = set()
    for line in r.stdout.decode(errors="replace").splitlines()[1:]:
        parts = line.split()
        for p in parts:
            if p.startswith("!v/"):
                names.add(p[3:])
    return names


def espeak_synthesise(text: str, voice: str, pitch: int, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng (``-v voice -p pitch -s rate``) and resample to mono float32 ``[T]``."""
    r = _run(["espeak-ng", "-v", voice, "-p", str(int(pitch)), "-s", str(int(rate)), "--stdout", text])
    if r.returncode != 0 or len(r.stdout) < 100:
        raise BuildError(f"espeak-ng -v {voice} failed: {r.stderr.decode(errors='replace').strip()[-200:]}")
    return ffmpeg_decode(r.stdout)


def opensfx_entries(cat_path: Path) -> list[tuple[str, bytes]]:
    """The sounds inside OpenTTD's ``opensfx.cat``: ``[(description, wav_bytes)]`` (empty entries skipped).

    Format: a table of little-endian ``(uint32 offset | 0x80000000, uint32 size)`` pairs; each entry is a
    length-prefixed NUL-terminated description followed by a RIFF/WAVE file."""
    b = cat_path.read_bytes()
    first = struct.unpack_from("<I", b, 0)[0] & 0x7FFFFFFF
    out = []
    for i in range(first // 8):
        off, size = struct.unpack_from("<II", b, 8 * i)
        off &= 0x7FFFFFFF
        name_len = b[off]
        name = b[off + 1:off + 1 + name_len].rstrip(b"\0").decode("utf-8", errors="replace")
        data = b[off + 1 + name_len:off + size]
        if data[:4] == b"RIFF" and len(data) > 1000:
            out.append((name, data))
    return out


def tool_versions() -> dict[str, str]:
    """First version line of ffmpeg and espeak-ng (for the manifest)."""
    out = {}
    for cmd in (["ffmpeg", "-version"], ["espeak-ng", "--version"]):
        try:
            r = _run(cmd)
            out[cmd[0]] = r.stdout.decode(errors="replace").splitlines()[0].strip()
        except (OSError, IndexError):
            out[cmd[0]] = "unavailable"
    return out


def file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def save_cache(path: Path, items: list[dict[str, Any]]) -> None:
    """Store decoded items ``{"audio": float32 [T], ...json fields}`` as one int16 npz (atomic)."""
    from linseq.io import atomic_write_bytes
    import io

    audio = [np.asarray(it["audio"], dtype=np.float32) for it in items]
    lengths = np.asarray([len(a) for a in audio], dtype=np.int64)
    cat = np.concatenate(audio) if audio else np.zeros(0, np.float32)
    pcm = np.round(np.clip(cat, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    meta = [{k: v for k, v in it.items() if k != "audio"} for it in items]
    buf = io.BytesIO()
    np.savez(buf, pcm=pcm, lengths=lengths, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    atomic_write_bytes(path, buf.getvalue())


def load_cache(path: Path) -> list[dict[str, Any]] | None:
    """Items stored by :func:`save_cache`, or None if the cache file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            pcm, lengths = z["pcm"], z["lengths"]
            meta = json.loads(z["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError):
        return None
    out, pos = [], 0
    for m, n in zip(meta, lengths):
        out.append({**m, "audio": pcm[pos:pos + n].astype(np.float32) / 32768.0})
        pos += int(n)
    return out
