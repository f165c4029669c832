"""The on-disk speech-enhancement pools: writer, validator and in-memory loader.

Layout of a pools folder (all audio mono 16 kHz)::

    manifest.json                  written last; lists every file with its byte size and contents
    speech/<split>/<source>.opus   one shard per source: its utterances back to back
    noise/<split>/<source>.opus    recorded (or pre-rendered) noise clips back to back

Utterances and noise clips are addressed by ``(file, start, length)`` in samples; generated noise is stored as
recipes (:mod:`linseq.data.speech.noise`) and RIRs as room parameters (:mod:`linseq.data.speech.rir`), both
inside the manifest. Splits are ``"train"`` and ``"test"``.

The folder is written under a temporary name and renamed into place, so a folder that carries the final name is
complete; :func:`load_manifest` still checks that every file it lists exists with the recorded size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE, encode_audio, read_audio
from linseq.data.speech.noise import realise_noise
from linseq.data.speech.rir import rir_from_params

__all__ = [
    "POOLS_FORMAT", "POOLS_VERSION", "SPLITS", "BUILD_HINT", "write_pools_from_arrays", "load_manifest",
    "pools_summary", "format_summary", "SplitPool", "load_split", "folder_mib",
]

POOLS_FORMAT = "linseq-speech-pools"
POOLS_VERSION = 1
SPLITS = ("train", "test")
BUILD_HINT = "build it with `linseq speech build-data` (or `python -m linseq.data.speech.build DIR`)"


def folder_mib(path: str | os.PathLike) -> float:
    """Total size of the files under ``path`` in MiB."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def _safe_name(s: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in s)
    if not out or out.startswith("."):
        raise ValueError(f"source name {s!r} cannot be used as a file name")
    return out


def _group(items: Iterable[Mapping[str, Any]], key: str) -> "OrderedDict[str, list[Mapping[str, Any]]]":
    groups: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
    for it in items:
        groups.setdefault(str(it[key]), []).append(it)
    return groups


def _concat(items: Sequence[Mapping[str, Any]], what: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    spans, parts, pos = [], [], 0
    for it in items:
        a = np.asarray(it["audio"], dtype=np.float32)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"{what} {it.get('id')!r}: audio must be a non-empty 1-D array; got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{what} {it.get('id')!r}: audio has NaN or inf samples")
        spans.append((pos, len(a)))
        parts.append(a)
        pos += len(a)
    return np.concatenate(parts), spans


def _summarise(manifest: dict[str, Any]) -> dict[str, Any]:
    sr = manifest["sample_rate"]
    out: dict[str, Any] = {}
    for split, sp in manifest["splits"].items():
        per_source: dict[str, float] = defaultdict(float)
        speakers = set()
        n_utt = 0
        for f in sp["speech"]:
            for _id, spk, _s, length in f["utterances"]:
                per_source[f["source"]] += length / sr
                speakers.add(spk)
                n_utt += 1
        fam_clips: dict[str, int] = defaultdict(int)
        fam_seconds: dict[str, float] = defaultdict(float)
        for f in sp["noise"]["files"]:
            for _id, fam, _s, length in f["clips"]:
                fam_clips[fam] += 1
                fam_seconds[fam] += length / sr
        for r in sp["noise"]["generated"]:
            fam_clips[r["family"]] += 1
            fam_seconds[r["family"]] += float(r["seconds"])
        out[split] = {
            "speech_hours": round(sum(per_source.values()) / 3600, 4),
            "speech_seconds_per_source": {k: round(v, 1) for k, v in sorted(per_source.items())},
            "utterances": n_utt,
            "speakers": len(speakers),
            "noise_clips": sum(fam_clips.values()),
            "noise_clips_per_family": dict(sorted(fam_clips.items())),
            "noise_seconds_per_family": {k: round(v, 1) for k, v in sorted(fam_seconds.items())},
            "rirs": len(sp["rirs"]),
            "rooms": len({r["room"] for r in sp["rirs"]}),
        }
    return out


def write_pools_from_arrays(
    out_dir: str | os.PathLike,
    speech: Mapping[str, Sequence[Mapping[str, Any]]],
    noise: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    generated_noise: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    rirs: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    meta: Mapping[str, Any] | None = None,
    codec: str = "opus",
    opus_level: float = 0.92,
    overwrite: bool = False,
    progress: bool = False,
    workers: int = 1,
    encode_cache: dict | None = None,
) -> Path:
    """Write a pools folder from in-memory audio (the writer the builder uses; tests use it with synthetic audio).

    ``speech[split]``: dicts ``{"id", "speaker", "source", "audio"}`` (+ optional ``"language"``), audio ``[T]``
    float in [-1, 1] at 16 kHz. ``noise[split]``: dicts ``{"id", "family", "source", "audio"}``.
    ``generated_noise[split]``: recipes ``{"id", "family", "seconds", "seed", "params"}``. ``rirs[split]``: dicts
    ``{"id", "room", "dims", "source", "mic", "rt60", "seed"}``. ``codec``: ``"opus"`` or ``"flac"``.
    Splits are ``"train"`` and ``"test"``; each needs speech and at least one noise clip or recipe.
    ``workers`` threads encode files in parallel; ``encode_cache`` (a dict kept by the caller) reuses the encoding
    of identical audio across calls. Returns the folder path. The folder appears atomically (written under a
    temporary name, then renamed).
    """
    out_dir = Path(out_dir)
    if codec not in ("opus", "flac"):
        raise ValueError(f"codec must be 'opus' or 'flac'; got {codec!r}")
    noise, generated_noise, rirs = noise or {}, generated_noise or {}, rirs or {}
    for name, m in (("speech", speech), ("noise", noise), ("generated_noise", generated_noise), ("rirs", rirs)):
        bad = set(m) - set(SPLITS)
        if bad:
            raise ValueError(f"{name} has unknown splits {sorted(bad)}; expected a subset of {SPLITS}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    ext = ".opus" if codec == "opus" else ".flac"

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
    try:
        splits: dict[str, Any] = {}
        jobs = []
        for split in SPLITS:
            sp_speech = list(speech.get(split, []))
            sp_noise = list(noise.get(split, []))
            sp_gen = [dict(r) for r in generated_noise.get(split, [])]
            sp_rirs = [dict(r) for r in rirs.get(split, [])]
            if not (sp_speech or sp_noise or sp_gen or sp_rirs):
                continue
            if not sp_speech:
                raise ValueError(f"split {split!r} has no speech")
            if not sp_noise and not sp_gen:
                raise ValueError(f"split {split!r} has no noise clips or recipes")
            entry: dict[str, Any] = {"speech": [], "noise": {"files": [], "generated": sp_gen}, "rirs": sp_rirs}
            for kind, items, label in (("speech", sp_speech, "utterance"), ("noise", sp_noise, "noise clip")):
                ids = [str(it["id"]) for it in items]
                if len(set(ids)) != len(ids):
                    raise ValueError(f"split {split!r}: duplicate {label} ids")
                for source, group in _group(items, "source").items():
                    rel = f"{kind}/{split}/{_safe_name(source)}{ext}"
                    jobs.append((rel, group, label))
                    f: dict[str, Any] = {"file": rel, "source": source}
                    if kind == "speech":
                        f["utterances"] = group  # replaced by the table below once encoded
                        entry["speech"].append(f)
                    else:
                        f["clips"] = group
                        entry["noise"]["files"].append(f)
            splits[split] = entry
        if not splits:
            raise ValueError("nothing to write: speech is empty for every split")

        tables = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="encode pools", unit="file")

        def encode(job):
            rel, group, label = job
            audio, spans = _concat(group, label)
            audio = np.clip(audio, -1.0, 1.0)
            key = None
            if encode_cache is not None:
                key = (codec, opus_level, hashlib.sha1(audio.tobytes()).hexdigest())
                data = encode_cache.get(key)
            if key is None or data is None:
                data = encode_audio(audio, SAMPLE_RATE, codec, opus_level)
                if key is not None:
                    encode_cache[key] = data
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            tables[rel] = (spans, len(data), len(audio))
            if bar is not None:
                bar.update(1)

        # largest first, so the threads finish together; soundfile releases the GIL while encoding
        order = sorted(jobs, key=lambda j: -sum(len(g["audio"]) for g in j[1]))
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as ex:
            list(ex.map(encode, order))
        if bar is not None:
            bar.close()
        for split, entry in splits.items():
            for f in entry["speech"]:
                spans, size, n = tables[f["file"]]
                f["bytes"], f["num_samples"] = size, n
                langs = sorted({str(u.get("language", "")) for u in f["utterances"]} - {""})
                if langs:
                    f["languages"] = langs
                f["utterances"] = [[str(u["id"]), str(u["speaker"]), s, ln] for u, (s, ln) in zip(f["utterances"], spans)]
            for f in entry["noise"]["files"]:
                spans, size, n = tables[f["file"]]
                f["bytes"], f["num_samples"] = size, n
                f["clips"] = [[str(c["id"]), str(c["family"]), s, ln] for c, (s, ln) in zip(f["clips"], spans)]
        manifest: dict[str, Any] = {
            "format": POOLS_FORMAT,
            "version": POOLS_VERSION,
            "sample_rate": SAMPLE_RATE,
            "codec": {"name": codec, **({"opus_compression_level": opus_level} if codec == "opus" else {})},
            "meta": dict(meta or {}),
            "splits": splits,
        }
        manifest["summary"] = _summarise(manifest)
        body = json.dumps(manifest, separators=(",", ":"), default=str).encode()
        manifest["summary"]["total_mib"] = round((sum(t[1] for t in tables.values()) + len(body) + 64) / 2**20, 3)
        (tmp / "manifest.json").write_bytes(json.dumps(manifest, separators=(",", ":"), default=str).encode())
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out_dir``, replacing an existing one."""
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def load_manifest(pools_dir: str | os.PathLike, check_files: bool = True) -> dict[str, Any]:
    """Read and validate ``pools_dir/manifest.json``.

    Raises FileNotFoundError when the folder or its manifest is missing and ValueError when the manifest is not a
    pools manifest or a listed file is missing or has the wrong size (an incomplete copy).
    """
    pools_dir = Path(pools_dir)
    if not pools_dir.is_dir():
        raise FileNotFoundError(f"speech pools folder {pools_dir} does not exist; {BUILD_HINT}")
    mpath = pools_dir / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{pools_dir} has no manifest.json, so it is not a complete speech pools folder; {BUILD_HINT}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{mpath} is not valid JSON ({e}); the pools folder is corrupt, {BUILD_HINT}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != POOLS_FORMAT:
        raise ValueError(f"{mpath} is not a {POOLS_FORMAT} manifest; {BUILD_HINT}")
    if manifest.get("version") != POOLS_VERSION:
        raise ValueError(f"{mpath} has pools version {manifest.get('version')}, this linseq reads {POOLS_VERSION}; {BUILD_HINT}")
    if check_files:
        for split, sp in manifest["splits"].items():
            for f in list(sp["speech"]) + list(sp["noise"]["files"]):
                p = pools_dir / f["file"]
                if not p.is_file():
                    raise ValueError(f"pools folder {pools_dir} is incomplete: {f['file']} is missing; {BUILD_HINT}")
                if p.stat().st_size != f["bytes"]:
                    raise ValueError(f"pools folder {pools_dir} is corrupt: {f['file']} has {p.stat().st_size} bytes, "
                                     f"the manifest says {f['bytes']}; {BUILD_HINT}")
    return manifest


def pools_summary(pools_dir: str | os.PathLike) -> dict[str, Any]:
    """The summary stored in the manifest (hours, clips, RIRs per split) plus the folder's size on disk."""
    m = load_manifest(pools_dir)
    return {**m["summary"], "total_mib": round(folder_mib(pools_dir), 3)}


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few human-readable lines from :func:`pools_summary`."""
    lines = []
    for split in SPLITS:
        s = summary.get(split)
        if not s:
            continue
        lines.append(
            f"{split:5s}: {s['speech_hours']:.2f} h speech ({s['utterances']} utterances, {s['speakers']} speakers), "
            f"{s['noise_clips']} noise clips in {len(s['noise_clips_per_family'])} families, "
            f"{s['rirs']} RIRs in {s['rooms']} rooms"
        )
        kinds: dict[str, list[float]] = {}
        for k, v in s["speech_seconds_per_source"].items():
            kinds.setdefault(k.split("-")[0], []).append(v)
        lines.append("       speech h by source: " + ", ".join(
            f"{k} {sum(v) / 3600:.2f}" + (f" ({len(v)} shards)" if len(v) > 1 else "") for k, v in kinds.items()))
        lines.append("       noise clips per family: " + ", ".join(
            f"{k} {v}" for k, v in s["noise_clips_per_family"].items()))
    lines.append(f"total: {summary['total_mib']:.1f} MiB")
    return "\n".join(lines)


class SplitPool:
    """One split of a pools folder, decoded into memory (int16) on first use.

    ``utterances``: list of ``(id, speaker, source)``; ``noise_clips``: list of ``(id, family)``; ``rirs``: list of
    RIR parameter dicts. :meth:`utterance`, :meth:`noise` and :meth:`rir` return float32 ``[T]`` arrays.
    """

    def __init__(self, pools_dir: str | os.PathLike, split: str, manifest: dict[str, Any] | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        self.pools_dir = Path(pools_dir)
        self.manifest = manifest if manifest is not None else load_manifest(self.pools_dir)
        if split not in self.manifest["splits"]:
            raise ValueError(f"pools folder {self.pools_dir} has no {split!r} split (it has "
                             f"{sorted(self.manifest['splits'])}); {BUILD_HINT}")
        if self.manifest["sample_rate"] != SAMPLE_RATE:
            raise ValueError(f"pools sample rate {self.manifest['sample_rate']} != {SAMPLE_RATE}")
        self.split = split
        sp = self.manifest["splits"][split]
        self._speech_files = [f["file"] for f in sp["speech"]]
        self.utterances: list[tuple[str, str, str]] = []
        rows = []
        for fi, f in enumerate(sp["speech"]):
            for uid, spk, start, length in f["utterances"]:
                self.utterances.append((uid, spk, f["source"]))
                rows.append((fi, start, length))
        self._utt = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        self._noise_files = [f["file"] for f in sp["noise"]["files"]]
        self.noise_clips: list[tuple[str, str]] = []
        self._noise_rows: list[tuple[int, int, int] | dict[str, Any]] = []
        for fi, f in enumerate(sp["noise"]["files"]):
            for cid, fam, start, length in f["clips"]:
                self.noise_clips.append((cid, fam))
                self._noise_rows.append((fi, start, length))
        for r in sp["noise"]["generated"]:
            self.noise_clips.append((r["id"], r["family"]))
            self._noise_rows.append(r)
        self.rirs: list[dict[str, Any]] = list(sp["rirs"])
        self.speakers = sorted({s for _, s, _ in self.utterances})
        self.families = sorted({f for _, f in self.noise_clips})
        self._audio: dict[str, np.ndarray] = {}
        self._rir_cache: dict[int, np.ndarray] = {}
        self._gen_cache: dict[int, np.ndarray] = {}

    def add_generated(self, recipes: list[dict[str, Any]]) -> "SplitPool":
        """Append generated noise recipes (``{"id", "family", "seconds", "seed", "params"}``) as more noise clips of
        this split in memory; the pools folder is not touched."""
        known = {cid for cid, _ in self.noise_clips}
        for r in recipes:
            if r["id"] in known:
                raise ValueError(f"noise clip id {r['id']!r} is already in split {self.split!r}")
            self.noise_clips.append((r["id"], r["family"]))
            self._noise_rows.append(r)
        self.families = sorted({f for _, f in self.noise_clips})
        return self

    # -- decoding
    def _file(self, rel: str) -> np.ndarray:
        a = self._audio.get(rel)
        if a is None:
            try:
                a, sr = read_audio(self.pools_dir / rel, dtype="int16")
            except ImportError:
                raise
            except Exception as e:
                raise ValueError(f"cannot decode {self.pools_dir / rel} ({e}); the pools folder is corrupt, {BUILD_HINT}") from e
            if sr != SAMPLE_RATE:
                raise ValueError(f"{self.pools_dir / rel} has sample rate {sr}, expected {SAMPLE_RATE}; {BUILD_HINT}")
            self._audio[rel] = a
        return a

    def preload(self, generated: bool = True, rirs: bool = False) -> "SplitPool":
        """Decode every audio file now, and realise the generated noise (``generated``) and simulate the RIRs
        (``rirs``, about 15 ms each), e.g. in the parent before fork-based DataLoader workers start, so that they
        share one copy instead of each building its own on first use."""
        files = [rel for rel in self._speech_files + self._noise_files if rel not in self._audio]
        gen = [i for i, row in enumerate(self._noise_rows) if generated and isinstance(row, dict)]
        # the decoder (libsndfile through cffi) and numpy's FFTs release the GIL, so threads use every core:
        # 43 Opus files took 24 s one after another on one core
        with ThreadPoolExecutor(max(1, min(len(files) + len(gen), os.cpu_count() or 1))) as pool:
            for _ in pool.map(self._file, files):
                pass
            for _ in pool.map(self.noise, gen):
                pass
        if rirs:
            for i in range(len(self.rirs)):
                self.rir(i)
        return self

    def share_decoded(self, other: "SplitPool") -> "SplitPool":
        """Read decoded files from ``other``'s store (a pool of the same folder) instead of decoding them again:
        files either pool decodes from now on are decoded once for both. Generated noise and RIRs stay per pool."""
        if self.pools_dir.resolve() != other.pools_dir.resolve():
            raise ValueError(f"pools {self.pools_dir} and {other.pools_dir} are different folders; nothing to share")
        other._audio.update(self._audio)
        self._audio = other._audio
        return self

    def __getstate__(self):  # workers started by spawn re-decode lazily instead of receiving pickled audio
        st = dict(self.__dict__)
        st["_audio"], st["_rir_cache"], st["_gen_cache"] = {}, {}, {}
        return st

    # -- access
    def utterance_lengths(self) -> np.ndarray:
        """Length of every utterance in samples: ``[num_utterances]`` int64."""
        return self._utt[:, 2].copy()

    def utterance(self, i: int) -> np.ndarray:
        """Utterance ``i`` as float32 ``[T]`` in [-1, 1]."""
        fi, start, length = self._utt[i]
        return self._file(self._speech_files[fi])[start:start + length].astype(np.float32) / 32768.0

    def noise(self, i: int) -> np.ndarray:
        """Noise clip ``i`` (recorded or generated) as float32 ``[T]``."""
        row = self._noise_rows[i]
        if isinstance(row, dict):
            a = self._gen_cache.get(i)
            if a is None:  # realised once, kept as int16 like the decoded files (peak 0.9, so no clipping)
                a = np.round(realise_noise(row, SAMPLE_RATE) * 32768.0).astype(np.int16)
                self._gen_cache[i] = a
            return a.astype(np.float32) / 32768.0
        fi, start, length = row
        return self._file(self._noise_files[fi])[start:start + length].astype(np.float32) / 32768.0

    def rir(self, i: int) -> np.ndarray:
        """RIR ``i``, simulated on first use and kept: float32 ``[T]``, peak 1."""
        h = self._rir_cache.get(i)
        if h is None:
            h = rir_from_params(self.rirs[i], SAMPLE_RATE)
            self._rir_cache[i] = h
        return h


def load_split(pools_dir: str | os.PathLike, split: str = "train") -> SplitPool:
    """Validate ``pools_dir`` and return its ``split`` as a lazily decoded :class:`SplitPool`."""
    return SplitPool(pools_dir, split)
