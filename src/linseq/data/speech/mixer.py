"""On-the-fly noisy/clean pairs from the pools, following FullSubNet's published DNS-2020 training recipe.

For item ``i`` (research notes §4; our own code):

1. clean: an utterance (drawn with probability ∝ max(length, segment)) randomly cropped to the segment length,
   zero-padded at the end if shorter;
2. noise: random noise clips joined with 0.2 s of silence between them until the segment is covered, then
   randomly cropped (``extra_noise_families`` adds generated families that no pools split has, beyond the recipe);
3. SNR: a uniform integer in [-5, 20] dB (``snr_range``); beyond the recipe, with probability
   ``clean_proportion`` (default 0) the noise is left out, so the input is the (reverberant) clean target itself;
   beyond the recipe too, ``speech_eq_db`` > 0 shapes the clean segment's spectrum by a random smooth gain curve
   (gains uniform in ±``speech_eq_db`` at :data:`EQ_FREQS_HZ`, linear in log frequency between them), so input
   and target carry the same colouring and the model cannot lean on one speech spectrum; and ``speed_perturb``
   = p > 0 plays the utterance at a random speed in [1 - p, 1 + p] (cropped to ``segment × speed`` samples, then
   resampled to the segment: pitch, formants and tempo scale together, the usual way to make new voices from
   few speakers; the crop length is the nearest one whose prime factors are all at most 11, so the speed moves
   by under 1 % and the resampling FFT stays fast: at ±10 % an item took 2.3 ms instead of 4.4 with exact
   lengths, against 1.6 ms without speed changes, on one core here,
   benchmarks/results/speech/cpu/mixer_timing.json);
4. reverb with probability 0.75: the clean segment is convolved with a random RIR (truncated to the segment) and
   the **reverberant clean is the target**;
5. clean and noise are peak-normalised, then set to -25 dBFS RMS; the noise is scaled to the SNR; the mixture is
   rescaled to a random integer level in [-35, -15) dBFS and the clean by the same factor; if the mixture would
   clip (|x| > 0.999), both are scaled so that the mixture peaks at 0.99.

All randomness of item ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])``, so an item is the same in
every process and DataLoader worker, and changes with :meth:`SpeechMixer.set_epoch`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from linseq.data.speech.audio import EPS, SAMPLE_RATE, fftconvolve
from linseq.data.speech.noise import EXTRA_FAMILIES, noise_recipes
from linseq.data.speech.pools import SplitPool

__all__ = ["SpeechMixer", "mix_at_snr", "noise_segment", "crop_or_pad", "shape_spectrum", "resample_to",
           "EQ_FREQS_HZ", "MAX_SPEED_PERTURB", "check_mixture_options"]

EQ_FREQS_HZ = (125.0, 500.0, 2000.0, 6000.0)  # control points of the random speech colouring (speech_eq_db)
MAX_SPEED_PERTURB = 0.3  # speed factors stay within [0.7, 1.3]


def crop_or_pad(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random ``n``-sample crop of ``x`` or ``x`` zero-padded at the end to ``n``; returns ``(y [n], start)``."""
    if len(x) > n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start:start + n], start
    return np.pad(x, (0, n - len(x))), 0


def shape_spectrum(x: np.ndarray, gains_db: np.ndarray, freqs_hz: tuple[float, ...] = EQ_FREQS_HZ,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` [T] filtered by a zero-phase gain curve: ``gains_db[k]`` at ``freqs_hz[k]``, linear in log frequency
    between them and constant beyond the first and last. Returns float64 ``[T]``."""
    gains_db = np.asarray(gains_db, dtype=np.float64)
    if gains_db.shape != (len(freqs_hz),):
        raise ValueError(f"gains_db must have one gain per frequency ({len(freqs_hz)}); got shape {gains_db.shape}")
    x = np.asarray(x, dtype=np.float64)
    f = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    curve = np.interp(np.log(np.maximum(f, freqs_hz[0])), np.log(freqs_hz), gains_db)
    return np.fft.irfft(np.fft.rfft(x) * 10 ** (curve / 20), len(x))


def resample_to(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` [T] resampled to ``n`` samples through its spectrum (band-limited; played at the original rate it is
    ``T / n`` times faster). Returns float64 ``[n]``."""
    x = np.asarray(x, dtype=np.float64)
    if n < 1 or len(x) < 1:
        raise ValueError(f"need a non-empty signal and n >= 1; got {len(x)} samples and n={n}")
    spectrum = np.fft.rfft(x)
    bins = n // 2 + 1
    spectrum = spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    return np.fft.irfft(spectrum, n) * (n / len(x))


def smooth_lengths(low: int, high: int, primes: tuple[int, ...] = (2, 3, 5, 7, 11)) -> np.ndarray:
    """The integers in ``[low, high]`` with no prime factor above ``max(primes)``, ascending (fast FFT lengths)."""
    values = {1}
    for p in primes:
        grown = set()
        for v in values:
            while v <= high:
                grown.add(v)
                v *= p
        values = grown
    return np.array(sorted(v for v in values if low <= v <= high), dtype=np.int64)


def check_mixture_options(clean_proportion: float, speech_eq_db: float,
                          snr_range: Sequence[float] | None = None, speed_perturb: float = 0.0) -> None:
    """ValueError (one line) for a ``clean_proportion`` outside [0, 1), a ``speech_eq_db`` outside [0, 20] dB, a
    ``speed_perturb`` outside [0, MAX_SPEED_PERTURB] or an ``snr_range`` that is not ``(low, high)`` with
    low <= high (None: not checked); the trainer calls it before it decodes the pools."""
    if snr_range is not None and (len(snr_range) != 2 or snr_range[0] > snr_range[1]):
        raise ValueError(f"snr_range must be (low, high) in dB with low <= high; got {tuple(snr_range)}")
    if not 0.0 <= clean_proportion < 1.0:
        raise ValueError(f"clean_proportion must be in [0, 1); got {clean_proportion}")
    if not 0.0 <= speech_eq_db <= 20.0:
        raise ValueError(f"speech_eq_db must be in [0, 20] dB; got {speech_eq_db}")
    if not 0.0 <= speed_perturb <= MAX_SPEED_PERTURB:
        raise ValueError(f"speed_perturb must be in [0, {MAX_SPEED_PERTURB}]; got {speed_perturb}")


def _normalise(x: np.ndarray, target_dbfs: float) -> np.ndarray:
    x = x / (np.max(np.abs(x)) + EPS)
    return x * (10 ** (target_dbfs / 20) / (np.sqrt(np.mean(x * x)) + EPS))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, level_dbfs: float,
               rir: np.ndarray | None = None, target_dbfs: float = -25.0) -> tuple[np.ndarray, np.ndarray]:
    """Mix ``clean`` and ``noise`` (both ``[T]``) at ``snr_db``; returns ``(noisy, target)`` float64 ``[T]``.

    With ``rir`` the clean is first convolved with it (``[:T]``) and the reverberant clean is the target. Steps
    and constants as in the module doc: peak-normalise, -25 dBFS, noise to the SNR, mixture to ``level_dbfs`` with
    the target scaled identically, clipping guard to peak 0.99. ``snr_db=math.inf`` leaves the noise out.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.ndim != 1 or clean.shape != noise.shape:
        raise ValueError(f"clean and noise must be 1-D of the same length; got {clean.shape} and {noise.shape}")
    if rir is not None:
        clean = fftconvolve(clean, np.asarray(rir, dtype=np.float64))[: len(clean)]
    clean = _normalise(clean, target_dbfs)
    noise = _normalise(noise, target_dbfs)
    clean_rms = np.sqrt(np.mean(clean * clean))
    noise_rms = np.sqrt(np.mean(noise * noise))
    noise = noise * (clean_rms / (10 ** (snr_db / 20)) / (noise_rms + EPS))
    noisy = clean + noise
    gain = 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(noisy * noisy)) + EPS)
    noisy, clean = noisy * gain, clean * gain
    peak = np.max(np.abs(noisy))
    if peak > 0.999:
        k = peak / (0.99 - EPS)
        noisy, clean = noisy / k, clean / k
    return noisy, clean


def noise_segment(pool: SplitPool, n: int, rng: np.random.Generator, gap: int, pick) -> tuple[np.ndarray, list[int]]:
    """``n`` samples of noise: clips chosen by ``pick(rng)`` joined with ``gap`` zeros until ``n`` samples are
    covered, then randomly cropped. Returns ``(noise [n] float32, clip indices)``."""
    parts, ids, total = [], [], 0
    while total < n:
        if parts:
            g = min(gap, n - total)
            parts.append(np.zeros(g, dtype=np.float32))
            total += g
            if total >= n:
                break
        i = pick(rng)
        clip = pool.noise(i)
        parts.append(clip)
        ids.append(i)
        total += len(clip)
    y = np.concatenate(parts)
    if len(y) > n:
        start = int(rng.integers(0, len(y) - n + 1))
        y = y[start:start + n]
    return y, ids


class SpeechMixer(torch.utils.data.Dataset):
    """Noisy/clean training pairs mixed on the fly from a pools folder (see the module doc for the recipe).

    ``__getitem__(i)`` returns ``(noisy, clean)``: float32 tensors ``[round(segment_seconds · 16000)]``.
    ``num_items`` is the length of one epoch. ``noise_sampling="family"`` draws a noise family uniformly and then
    a clip in it (balances the few recorded clips against the many generated recipes); ``"clip"`` draws clips
    uniformly. The pools are decoded lazily once per process; call :meth:`preload` in the parent before a fork-based
    DataLoader starts its workers to share one decoded copy.
    """

    def __init__(self, pools_dir: str | os.PathLike, split: str = "train", segment_seconds: float = 3.072,
                 seed: int = 0, num_items: int = 10_000, *, snr_range: tuple[int, int] = (-5, 20),
                 reverb_proportion: float = 0.75, target_dbfs: float = -25.0,
                 level_range: tuple[int, int] = (-35, -15), noise_gap_seconds: float = 0.2,
                 noise_sampling: str = "family", preload: bool = False,
                 extra_noise_families: tuple[str, ...] = (), extra_noise_per_family: int = 24,
                 clean_proportion: float = 0.0, speech_eq_db: float = 0.0, speed_perturb: float = 0.0):
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive; got {segment_seconds}")
        if num_items <= 0:
            raise ValueError(f"num_items must be positive; got {num_items}")
        if level_range[0] >= level_range[1]:
            raise ValueError(f"level_range must be (low, high) with low < high; got {level_range}")
        if not 0.0 <= reverb_proportion <= 1.0:
            raise ValueError(f"reverb_proportion must be in [0, 1]; got {reverb_proportion}")
        check_mixture_options(clean_proportion, speech_eq_db, snr_range, speed_perturb)
        if noise_sampling not in ("family", "clip"):
            raise ValueError(f"noise_sampling must be 'family' or 'clip'; got {noise_sampling!r}")
        self.pool = SplitPool(pools_dir, split)
        self.extra_noise_families = tuple(extra_noise_families)
        if self.extra_noise_families:
            self.pool.add_generated(self._extra_recipes(split, extra_noise_per_family, seed))
        if reverb_proportion > 0 and not self.pool.rirs:
            raise ValueError(f"split {split!r} of {pools_dir} has no RIRs; use reverb_proportion=0")
        self.split = split
        self.segment = int(round(segment_seconds * SAMPLE_RATE))
        self.seed, self.num_items = int(seed), int(num_items)
        # in shared memory, so set_epoch reaches DataLoader workers that persist across epochs
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.snr_range, self.level_range = tuple(snr_range), tuple(level_range)
        self.reverb_proportion, self.target_dbfs = float(reverb_proportion), float(target_dbfs)
        self.clean_proportion, self.speech_eq_db = float(clean_proportion), float(speech_eq_db)
        self.speed_perturb = float(speed_perturb)
        # crop lengths the speed is rounded to (see the module doc); empty without speed_perturb or when none lies
        # in range (then the crop keeps its exact length)
        self._crop_lengths = (smooth_lengths(math.ceil(self.segment * (1 - self.speed_perturb)),
                                             math.floor(self.segment * (1 + self.speed_perturb)))
                              if self.speed_perturb else np.empty(0, dtype=np.int64))
        self.gap = int(round(noise_gap_seconds * SAMPLE_RATE))
        self.noise_sampling = noise_sampling
        w = np.maximum(self.pool.utterance_lengths(), self.segment).astype(np.float64)
        self._utt_cdf = np.cumsum(w) / w.sum()
        fam_of = [f for _, f in self.pool.noise_clips]
        self._families = sorted(set(fam_of))
        self._clips_by_family = [np.flatnonzero(np.asarray(fam_of) == f) for f in self._families]
        if preload:
            self.preload()

    def _extra_recipes(self, split: str, per_family: int, seed: int) -> list[dict]:
        """Recipes of the extra generated families (``noise.EXTRA_FAMILIES``), fixed by ``seed``; refused for the
        test split and for a family the pools keep for testing."""
        bad = [f for f in self.extra_noise_families if f not in EXTRA_FAMILIES]
        if bad:
            raise ValueError(f"extra_noise_families must be among {EXTRA_FAMILIES}; got {bad}")
        held_out = set(self.pool.manifest.get("meta", {}).get("noise_families", {}).get("test", []))
        if split == "test" or held_out & set(self.extra_noise_families):
            raise ValueError(f"extra noise families are for training mixtures; split {split!r}, test families "
                             f"{sorted(held_out)}")
        if per_family < 1:
            raise ValueError(f"extra_noise_per_family must be >= 1; got {per_family}")
        return noise_recipes(self.extra_noise_families, per_family, np.random.default_rng([int(seed), 0x6578747261]),
                             "extra")

    def preload(self, rirs: bool = False) -> "SpeechMixer":
        """Decode the pools and realise the generated noise now (and simulate every RIR with ``rirs``); see the
        class doc."""
        self.pool.preload(generated=True, rirs=rirs)
        return self

    def share_decoded(self, other: "SpeechMixer") -> "SpeechMixer":
        """Use ``other``'s decoded pool files (same pools folder), e.g. for validation mixtures of the split that
        a preloaded training mixer already decoded; see :meth:`SplitPool.share_decoded`."""
        self.pool.share_decoded(other.pool)
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; items depend on ``(seed, epoch, index)``. Call it before iterating the DataLoader
        for that epoch; it also reaches persistent workers."""
        self._epoch[0] = int(epoch)

    @property
    def epoch(self) -> int:
        """The current epoch (see :meth:`set_epoch`)."""
        return int(self._epoch[0])

    def __len__(self) -> int:
        return self.num_items

    def _pick_noise(self, rng: np.random.Generator) -> int:
        if self.noise_sampling == "clip":
            return int(rng.integers(len(self.pool.noise_clips)))
        clips = self._clips_by_family[int(rng.integers(len(self._families)))]
        return int(clips[int(rng.integers(len(clips)))])

    def mix(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Item ``index`` as float32 numpy arrays ``(noisy [T], clean [T], info)``; ``info`` holds the draws:
        ``utterance, speaker, clean_start, noise_clips, snr_db, reverb, rir, level_dbfs, clean_only, eq_gains_db,
        speed`` (ids, not indices; with ``clean_only`` the noise drawn was left out; ``eq_gains_db`` is None without
        ``speech_eq_db``; ``speed`` is 1.0 without ``speed_perturb``)."""
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        u = min(int(np.searchsorted(self._utt_cdf, rng.random(), side="right")), len(self._utt_cdf) - 1)
        # drawn only when on, so every mixture of speed_perturb=0 stays as it was
        speed = 1.0 + rng.uniform(-self.speed_perturb, self.speed_perturb) if self.speed_perturb else 1.0
        crop = max(1, int(round(self.segment * speed)))
        if len(self._crop_lengths):
            crop = int(self._crop_lengths[np.argmin(np.abs(self._crop_lengths - self.segment * speed))])
            speed = crop / self.segment
        clean, start = crop_or_pad(self.pool.utterance(u), crop, rng)
        if self.speed_perturb:
            clean = resample_to(clean, self.segment)
        noise, clips = noise_segment(self.pool, self.segment, rng, self.gap, self._pick_noise)
        snr = int(rng.integers(self.snr_range[0], self.snr_range[1] + 1))
        reverb = bool(rng.random() < self.reverb_proportion)
        r = int(rng.integers(len(self.pool.rirs))) if reverb else None
        level = int(rng.integers(self.level_range[0], self.level_range[1]))
        # drawn last, so the other draws (and every mixture of clean_proportion=0) stay as they were
        clean_only = self.clean_proportion > 0 and bool(rng.random() < self.clean_proportion)
        eq = rng.uniform(-self.speech_eq_db, self.speech_eq_db, len(EQ_FREQS_HZ)) if self.speech_eq_db else None
        if eq is not None:
            clean = shape_spectrum(clean, eq)
        noisy, target = mix_at_snr(clean, noise, math.inf if clean_only else snr, level,
                                   self.pool.rir(r) if reverb else None, self.target_dbfs)
        uid, spk, _ = self.pool.utterances[u]
        info = {"utterance": uid, "speaker": spk, "clean_start": start,
                "noise_clips": [self.pool.noise_clips[c][0] for c in clips], "snr_db": snr, "reverb": reverb,
                "rir": self.pool.rirs[r]["id"] if reverb else None, "level_dbfs": level, "clean_only": clean_only,
                "eq_gains_db": None if eq is None else [round(float(g), 3) for g in eq], "speed": float(speed)}
        return noisy.astype(np.float32), target.astype(np.float32), info

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        noisy, clean, _ = self.mix(int(index))
        return torch.from_numpy(noisy), torch.from_numpy(clean)
