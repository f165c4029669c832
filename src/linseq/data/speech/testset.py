"""A deterministic test set shaped like the DNS Challenge 2020 synthetic test set, built from the test pools.

Layout::

    <out>/no_reverb/noisy/noisy_fileid_<N>.flac     <out>/no_reverb/clean/clean_fileid_<N>.flac
    <out>/with_reverb/noisy/noisy_fileid_<N>.flac   <out>/with_reverb/clean/clean_fileid_<N>.flac
    <out>/manifest.json                              per clip: speaker, utterances, noise clips, SNR, level, RIR

16-bit FLAC, 16 kHz mono, ``seconds`` long. Each clip is one test speaker (drawn with probability proportional to
the speaker's amount of speech, so small pools are not reused more than large ones) reading random utterances
with 0.1-0.5 s pauses; noise from the test noise pool (families drawn uniformly); SNR a uniform integer in [0, 25] dB; level a
random integer in [-35, -15) dBFS; ``with_reverb`` clips convolve the clean speech with a test RIR and use the
**reverberant clean** as the reference, as DNS-2020 does. Same mixing code as the training mixer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE, encode_audio, read_audio
from linseq.data.speech.mixer import crop_or_pad, mix_at_snr, noise_segment
from linseq.data.speech.pools import SplitPool, _swap_into_place

__all__ = ["TEST_SUBSETS", "build_test_set", "load_test_set"]

TEST_SUBSETS = ("no_reverb", "with_reverb")
TEST_SET_FORMAT = "linseq-speech-testset"


def _speaker_clip(pool: SplitPool, by_speaker: dict[str, np.ndarray], speaker: str, n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    utts = by_speaker[speaker]
    parts, used, total, last = [], [], 0, -1
    while total < n:
        if parts:
            g = int(rng.uniform(0.1, 0.5) * SAMPLE_RATE)
            parts.append(np.zeros(g, dtype=np.float32))
            total += g
        choices = utts if len(utts) == 1 else utts[utts != last]
        u = int(choices[int(rng.integers(len(choices)))])
        x = pool.utterance(u)
        if not parts and len(x) > n:
            x, _ = crop_or_pad(x, n, rng)
        parts.append(x)
        used.append(pool.utterances[u][0])
        total += len(x)
        last = u
    return np.concatenate(parts)[:n], used


def build_test_set(pools_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 20_200,
                   num_per_subset: int = 150, seconds: float = 10.0, *, snr_range: tuple[int, int] = (0, 25),
                   level_range: tuple[int, int] = (-35, -15), overwrite: bool = False, progress: bool = True) -> Path:
    """Build the DNS-2020-shaped test set from the ``test`` split of ``pools_dir`` into ``out_dir``.

    ``num_per_subset`` clips of ``seconds`` each in ``no_reverb`` and ``with_reverb`` (see the module doc). The
    folder appears atomically; rebuilding with the same arguments from the same pools gives bit-identical files (same
    numpy and libsndfile versions), and a complete folder built with the same arguments is left as it is. Returns
    ``out_dir``.
    """
    pools_dir, out_dir = Path(pools_dir), Path(out_dir)
    if num_per_subset <= 0 or seconds <= 0:
        raise ValueError(f"num_per_subset and seconds must be positive; got {num_per_subset} and {seconds}")
    pool = SplitPool(pools_dir, "test")
    if not pool.rirs:
        raise ValueError(f"the test split of {pools_dir} has no RIRs, so with_reverb cannot be built")
    pools_hash = hashlib.sha256((pools_dir / "manifest.json").read_bytes()).hexdigest()
    params = {"seed": int(seed), "num_per_subset": int(num_per_subset), "seconds": float(seconds),
              "snr_range": list(snr_range), "level_range": list(level_range), "pools_manifest_sha256": pools_hash}
    mpath = out_dir / "manifest.json"
    if mpath.is_file():
        try:
            old = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        if old.get("params") == params and _files_ok(out_dir, old):
            return out_dir
        if not overwrite:
            raise FileExistsError(f"{out_dir} holds a test set built with other arguments or pools; "
                                  "pass overwrite=True to replace it")
    elif out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists, is not empty and is not a test set; pass overwrite=True to replace it")

    by_speaker: dict[str, list[int]] = {}
    for i, (_uid, spk, _src) in enumerate(pool.utterances):
        by_speaker.setdefault(spk, []).append(i)
    by_speaker_arr = {k: np.asarray(v) for k, v in by_speaker.items()}
    speakers = sorted(by_speaker)
    lengths = pool.utterance_lengths()
    spk_weight = np.asarray([lengths[by_speaker[s]].sum() for s in speakers], dtype=np.float64)
    spk_cdf = np.cumsum(spk_weight) / spk_weight.sum()
    fam_of = np.asarray([f for _, f in pool.noise_clips])
    families = sorted(set(fam_of.tolist()))
    clips_by_family = [np.flatnonzero(fam_of == f) for f in families]

    def pick_noise(rng: np.random.Generator) -> int:
        c = clips_by_family[int(rng.integers(len(families)))]
        return int(c[int(rng.integers(len(c)))])

    n = int(round(seconds * SAMPLE_RATE))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        clips: list[dict[str, Any]] = []
        jobs = [(s, k) for s in range(len(TEST_SUBSETS)) for k in range(num_per_subset)]
        it = jobs
        if progress:
            from tqdm import tqdm

            it = tqdm(jobs, desc="test set", unit="clip")
        for s, k in it:
            subset = TEST_SUBSETS[s]
            rng = np.random.default_rng([int(seed), s, k])
            speaker = speakers[min(int(np.searchsorted(spk_cdf, rng.random(), side="right")), len(speakers) - 1)]
            kind = pool.utterances[by_speaker[speaker][0]][2].split("-")[0]
            clean, utts = _speaker_clip(pool, by_speaker_arr, speaker, n, rng)
            noise, nclips = noise_segment(pool, n, rng, int(0.2 * SAMPLE_RATE), pick_noise)
            snr = int(rng.integers(snr_range[0], snr_range[1] + 1))
            level = int(rng.integers(level_range[0], level_range[1]))
            r = int(rng.integers(len(pool.rirs))) if subset == "with_reverb" else None
            noisy, target = mix_at_snr(clean, noise, snr, level, pool.rir(r) if r is not None else None)
            name = f"fileid_{k}"
            for kind_dir, x in (("noisy", noisy), ("clean", target)):
                p = tmp / subset / kind_dir / f"{kind_dir}_{name}.flac"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(encode_audio(x.astype(np.float32), SAMPLE_RATE, "flac"))
            clips.append({
                "name": name, "subset": subset, "speaker": speaker, "source_kind": kind, "utterances": utts,
                "noise_clips": [pool.noise_clips[c][0] for c in nclips],
                "noise_families": sorted({pool.noise_clips[c][1] for c in nclips}), "snr_db": snr,
                "level_dbfs": level, "rir": pool.rirs[r]["id"] if r is not None else None,
                "rt60": pool.rirs[r]["rt60"] if r is not None else None,
                "noisy": f"{subset}/noisy/noisy_{name}.flac", "clean": f"{subset}/clean/clean_{name}.flac",
            })
        manifest = {"format": TEST_SET_FORMAT, "version": 1, "sample_rate": SAMPLE_RATE, "params": params,
                    "pools_dir": str(pools_dir), "clips": clips}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _files_ok(out_dir: Path, manifest: dict[str, Any]) -> bool:
    try:
        return all((out_dir / c[k]).is_file() for c in manifest["clips"] for k in ("noisy", "clean"))
    except (KeyError, TypeError):
        return False


def load_test_set(test_dir: str | os.PathLike, subsets: tuple[str, ...] = TEST_SUBSETS
                  ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """Iterate ``(name, subset, noisy, clean)`` over a test set from :func:`build_test_set`: ``name`` is
    ``"fileid_N"``, ``noisy`` and ``clean`` float32 ``[T]`` at 16 kHz (for ``with_reverb``, ``clean`` is the
    reverberant reference). Order: ``no_reverb`` then ``with_reverb``, by file id."""
    test_dir = Path(test_dir)
    mpath = test_dir / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{test_dir} is not a speech test set (no manifest.json); build it with "
                                "linseq.data.speech.build_test_set")
    manifest = json.loads(mpath.read_text())
    if manifest.get("format") != TEST_SET_FORMAT:
        raise ValueError(f"{mpath} is not a {TEST_SET_FORMAT} manifest")
    bad = set(subsets) - set(TEST_SUBSETS)
    if bad:
        raise ValueError(f"subsets must be drawn from {TEST_SUBSETS}; got {sorted(bad)}")
    for subset in subsets:
        for c in manifest["clips"]:
            if c["subset"] != subset:
                continue
            noisy, sr1 = read_audio(test_dir / c["noisy"])
            clean, sr2 = read_audio(test_dir / c["clean"])
            if sr1 != SAMPLE_RATE or sr2 != SAMPLE_RATE or len(noisy) != len(clean):
                raise ValueError(f"test clip {subset}/{c['name']} is corrupt (rates {sr1}/{sr2}, lengths "
                                 f"{len(noisy)}/{len(clean)})")
            yield c["name"], subset, noisy, clean
