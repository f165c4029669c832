"""Build the offline speech-enhancement pools from Debian packages, espeak-ng and generators.

``python -m linseq.data.speech.build OUT_DIR`` (or :func:`build_pools`). Needs a Debian system with apt (run as
root to fetch what is missing), ffmpeg and espeak-ng; takes about 10-20 minutes on two cores. Decoded sources are
cached next to the output (``OUT_DIR_cache``), so a second build is fast; a complete ``OUT_DIR`` is left as it is.

Sources (all resampled to 16 kHz mono, silence-trimmed; clipped pieces, utterances under 1 s and utterances with
speech activity under 0.6 — FullSubNet's rule — dropped):

* recorded speech: Asterisk prompts (G.722, 16 kHz; en/es read by Allison, fr by June, ru by IvrvoiceRU, it by
  Carlo), KDE ktuberling object names and klettres letters/syllables (one volunteer speaker per language), joined
  into 2-4 s pseudo-utterances with 50-300 ms pauses (Asterisk prompts under 1 s as well);
* synthetic speech: espeak-ng with random language, voice variant, pitch 30-70 and rate 130-200 wpm reading random
  dictionary words and numbers, then a random ±6 dB spectral tilt and, for a quarter, a 4-7 kHz band limit;
* noise: OpenTTD's OpenSFX recordings, sound-icons and freedesktop alert sounds, alsa's Noise.wav, Asterisk
  music-on-hold, babble (3-8 talkers of the same split), and generated families (recipes, see ``noise.py``);
* RIRs: simulated shoebox rooms 3×3×2.5-10×8×4 m, RT60 0.2-1.3 s, source-mic 0.5-3 m (parameters, see ``rir.py``).

Splits are disjoint by language/speaker, noise family and room: every source in the languages of
:data:`TEST_LANGUAGES` (Italian, Dutch, Swedish, Hungarian) goes to ``test``, and espeak's test voices use variants
never used in training; noise families in :data:`NOISE_FAMILIES` ``["test"]`` (hum, engine, music, alerts,
nature/crowd) appear only in test; test RIRs come from their own rooms.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from linseq.data.speech.audio import SAMPLE_RATE, activity, encode_audio, is_clipped, trim_silence
from linseq.data.speech.noise import long_term_spectrum_db, noise_recipes
from linseq.data.speech.pools import (
    SPLITS, _swap_into_place, folder_mib, format_summary, load_manifest, pools_summary, write_pools_from_arrays,
)
from linseq.data.speech.rir import sample_rir_params

__all__ = ["build_pools", "main", "TEST_LANGUAGES", "NOISE_FAMILIES", "BUILD_VERSION"]

BUILD_VERSION = 1
SR = SAMPLE_RATE
TEST_LANGUAGES = ("it", "nl", "sv", "hu")
ASTERISK_VOICES = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo",
                   "ru": "ru_RU_f_IvrvoiceRU"}
ASTERISK_NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys"}
ESPEAK_LANGUAGES = {
    "train": ("af", "ca", "cs", "cy", "da", "de", "en-gb", "en-us", "en-gb-scotland", "en-029", "eo", "es", "es-419",
              "et", "eu", "fi", "fr-fr", "fr-be", "ga", "hr", "id", "is", "lt", "lv", "mt", "nb", "pl", "pt", "pt-br",
              "ro", "sk", "sl", "sq", "sw", "tr"),
    "test": TEST_LANGUAGES,
}
ESPEAK_VARIANTS = {
    "train": ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f3", "f5", "klatt", "klatt2", "klatt4", "klatt5",
              "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin", "boris",
              "caleb", "david", "ed", "edward", "Gene", "gustave", "Henrique", "Hugo", "iven", "Jacky", "john",
              "linda", "max", "Michael", "michel", "miguel", "Mike", "pablo", "paul", "pedro", "quincy", "rob",
              "robert", "sandro", "steph", "travis", "zac", "anika", "grandpa", "Lee", "Marco", "Mario", "marcelo",
              "Diogo", "Denis", "norbert"),
    "test": ("m7", "f4", "klatt3", "klatt6", "shelby", "victor", "grandma", "iven2", "edward2", "steph2"),
}
GENERATED = {"train": ("white", "pink", "brown", "blue", "violet", "speech_shaped", "am_modulated", "bursty", "clicks",
                       "fan"),
             "test": ("hum", "engine")}
NOISE_FAMILIES = {
    "train": GENERATED["train"] + ("babble", "machines_vehicles"),
    "test": GENERATED["test"] + ("music", "alerts", "nature_crowd"),
}
OPENSFX_TEST_WORDS = ("wind", "bird", "sheep", "cow", "horse", "lion", "monkey", "applause", "oooh")


def _lang(code: str) -> str:
    """'pt_BR' -> 'pt', 'sr@latin' -> 'sr', 'en-gb' -> 'en'."""
    return code.split("@")[0].split("_")[0].split("-")[0].lower()


def _split_of(lang: str) -> str:
    return "test" if _lang(lang) in TEST_LANGUAGES else "train"


def _looks_clipped(x: np.ndarray) -> bool:
    """Clipping that survives resampling: many samples, or a run of 4, within 1% of a peak ≥ 0.95."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 0.95:
        return False
    return is_clipped(x / peak, level=0.99, max_fraction=1e-3, run=4)


def _peak_norm(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x)))
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


class _Stats(dict):
    def add(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


def _clean_piece(x: np.ndarray, stats: _Stats, min_s: float = 0.15) -> np.ndarray | None:
    if len(x) == 0 or not np.all(np.isfinite(x)):
        stats.add("dropped_empty")
        return None
    if _looks_clipped(x):
        stats.add("dropped_clipped")
        return None
    x = trim_silence(x, SR, threshold_db=40.0)
    if len(x) < min_s * SR:
        stats.add("dropped_too_short")
        return None
    return x


def _pseudo_utterances(pieces: list[np.ndarray], rng: np.random.Generator, min_s: float = 2.0, max_s: float = 4.0,
                       gap: tuple[float, float] = (0.05, 0.3)) -> list[tuple[np.ndarray, int]]:
    """Join word-like ``pieces`` of one speaker (RMS-equalised ±3 dB) into ``min_s``-``max_s`` s utterances."""
    order = rng.permutation(len(pieces))
    out, cur, cur_len, target = [], [], 0, rng.uniform(min_s, max_s) * SR
    for i in order:
        p = pieces[i]
        p = p / (np.sqrt(np.mean(p * p)) + 1e-9) * 0.1 * 10 ** (rng.uniform(-3, 3) / 20)
        if cur:
            g = np.zeros(int(rng.uniform(*gap) * SR), np.float32)
            cur.append(g)
            cur_len += len(g)
        cur.append(p.astype(np.float32))
        cur_len += len(p)
        if cur_len >= target:
            out.append((_peak_norm(np.concatenate(cur)), (len(cur) + 1) // 2))
            cur, cur_len, target = [], 0, rng.uniform(min_s, max_s) * SR
    if cur and cur_len >= 1.0 * SR:
        out.append((_peak_norm(np.concatenate(cur)), (len(cur) + 1) // 2))
    return out


# ----------------------------------------------------------------------------------------------- collectors
def _collect_asterisk(roots: dict[str, Path], rng: np.random.Generator, stats: _Stats, workers: int, bar
                      ) -> list[dict[str, Any]]:
    from linseq.data.speech.sources import ffmpeg_decode_many

    items = []
    for lang, folder in ASTERISK_VOICES.items():
        pkg = f"asterisk-core-sounds-{lang}-g722"
        base = roots[pkg] / "usr/share/asterisk/sounds" / folder
        files = sorted(p for p in base.rglob("*.g722")
                       if p.parent.name != "silence" and p.stem not in ASTERISK_NOT_SPEECH)
        # one ffmpeg call per file: G.722 is ADPCM, so decoding the concatenation would carry the decoder state
        # across file boundaries and start each prompt with a loud transient
        audio = ffmpeg_decode_many(files, workers, bar, input_format="g722")
        speaker = "asterisk-" + folder.split("_")[-1]
        source = f"asterisk-{lang}"
        long_, short = [], []
        for p, x in zip(files, audio):
            x = _clean_piece(x, stats)
            if x is None:
                continue
            (long_ if len(x) >= SR else short).append((p.relative_to(base).with_suffix("").as_posix(), x))
        for name, x in long_:
            items.append({"id": f"{source}/{name}", "speaker": speaker, "source": source, "language": lang,
                          "audio": _peak_norm(x)})
        for k, (x, n) in enumerate(_pseudo_utterances([x for _, x in short], rng)):
            items.append({"id": f"{source}/joined{k:03d}", "speaker": speaker, "source": source, "language": lang,
                          "audio": x})
        stats.add(f"{source}_prompts", len(files))
    return items


def _collect_kde(roots: dict[str, Path], rng: np.random.Generator, stats: _Stats, workers: int, bar
                 ) -> list[dict[str, Any]]:
    from linseq.data.speech.sources import ffmpeg_decode_many, file_sha1

    groups: dict[tuple[str, str], list[Path]] = {}
    seen: set[str] = set()
    for app, base in (("ktuberling", roots["ktuberling-data"] / "usr/share/ktuberling/sounds"),
                      ("klettres", roots["klettres-data"] / "usr/share/klettres")):
        for d in sorted(p for p in base.iterdir() if p.is_dir()):
            files = sorted(p for p in d.rglob("*") if p.suffix.lower() in (".ogg", ".wav", ".opus") and p.is_file())
            if not files:
                continue
            keep = []
            for f in files:
                h = file_sha1(f)
                if h in seen:
                    stats.add("dropped_duplicate")
                    continue
                seen.add(h)
                keep.append(f)
            if keep:
                groups.setdefault((app, _lang(d.name)), []).extend(keep)
    items = []
    for (app, lang), files in sorted(groups.items()):
        audio = ffmpeg_decode_many(files, workers, bar)
        pieces = [x for x in (_clean_piece(a, stats) for a in audio) if x is not None]
        source = f"{app}-{lang}"
        for k, (x, n) in enumerate(_pseudo_utterances(pieces, rng)):
            items.append({"id": f"{source}/joined{k:03d}", "speaker": source, "source": source, "language": lang,
                          "audio": x})
    return items


def _espeak_specs(split: str, n: int, words: list[str], variants: set[str], rng: np.random.Generator
                  ) -> list[dict[str, Any]]:
    langs = ESPEAK_LANGUAGES[split]
    vs = [v for v in ESPEAK_VARIANTS[split] if v in variants] or ["m1"]
    specs = []
    for _ in range(n):
        tokens = []
        for _ in range(int(rng.integers(5, 15))):
            if rng.random() < 0.15:
                tokens.append(str(int(rng.integers(0, 10_000)) if rng.random() < 0.7 else int(rng.integers(1900, 2030))))
            else:
                tokens.append(words[int(rng.integers(len(words)))])
        specs.append({"language": str(rng.choice(langs)), "variant": str(rng.choice(vs)),
                      "pitch": int(rng.integers(30, 71)), "rate": int(rng.integers(130, 201)),
                      "text": " ".join(tokens), "tilt_db": round(float(rng.uniform(-6, 6)), 2),
                      "lowpass_hz": round(float(rng.uniform(4000, 7000))) if rng.random() < 0.25 else None,
                      "seed": int(rng.integers(2**31))})
    return specs


def _augment(x: np.ndarray, tilt_db: float, lowpass_hz: float | None) -> np.ndarray:
    """Spectral tilt of ±``tilt_db`` at 125 Hz / 8 kHz around 1 kHz, and an optional steep low-pass."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / SR)
    g_db = tilt_db * np.clip(np.log2(np.maximum(f, 125.0) / 1000.0) / 3.0, -1, 1)
    g = 10 ** (g_db / 20)
    if lowpass_hz:
        g *= np.clip((lowpass_hz + 300 - f) / 600, 0, 1) ** 2
    return np.fft.irfft(spec * g, len(x)).astype(np.float32)


def _collect_espeak(split: str, seconds: float, words: list[str], seed: int, stats: _Stats, workers: int, bar
                    ) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    from linseq.data.speech.sources import BuildError, espeak_synthesise, espeak_variants

    variants = espeak_variants()
    rng = np.random.default_rng([seed, 7, SPLITS.index(split)])
    specs = _espeak_specs(split, int(seconds / 2.0) + 50, words, variants, rng)  # more than enough; stop early
    items: list[dict[str, Any]] = []
    total = 0.0

    def synth(spec):
        try:
            x = espeak_synthesise(spec["text"], f"{spec['language']}+{spec['variant']}", spec["pitch"], spec["rate"])
        except BuildError:
            return None
        return _augment(x, spec["tilt_db"], spec["lowpass_hz"]) if len(x) else None

    batch = 32
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        for b0 in range(0, len(specs), batch):
            chunk = specs[b0:b0 + batch]
            for k, (spec, x) in enumerate(zip(chunk, ex.map(synth, chunk))):
                bar(1)
                if x is None:
                    stats.add("dropped_espeak_failed")
                    continue
                x = _clean_piece(x, stats, min_s=1.0)
                if x is None:
                    continue
                lang = spec["language"]
                items.append({"id": f"espeak-{split}/{b0 + k:05d}", "speaker": f"espeak-{lang}+{spec['variant']}",
                              "source": f"espeak-{split}", "language": _lang(lang), "audio": _peak_norm(x),
                              "espeak": {k2: spec[k2] for k2 in ("pitch", "rate", "tilt_db", "lowpass_hz")}})
                total += len(x) / SR
            if total >= seconds:
                break
    return items


def _collect_noise(roots: dict[str, Path], stats: _Stats, music_seconds: float, rng: np.random.Generator,
                   workers: int, bar) -> list[dict[str, Any]]:
    from linseq.data.speech.sources import ffmpeg_decode, ffmpeg_decode_many, opensfx_entries

    items: list[dict[str, Any]] = []

    def add(split, family, source, cid, x, min_s=0.25):
        x = trim_silence(x, SR, threshold_db=50.0)
        if len(x) < min_s * SR or not np.all(np.isfinite(x)):
            stats.add("dropped_noise_short")
            return
        items.append({"id": f"{source}/{cid}", "family": family, "source": source, "split": split,
                      "audio": _peak_norm(x)})

    # OpenTTD OpenSFX: vehicles, machines, industry (train); wind, animals, crowds (test)
    cat = roots["openttd-opensfx"] / "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
    for k, (desc, wav) in enumerate(opensfx_entries(cat)):
        title = desc.split('"')[1] if desc.count('"') >= 2 else desc
        test = any(w in title.lower() for w in OPENSFX_TEST_WORDS)
        add("test" if test else "train", "nature_crowd" if test else "machines_vehicles",
            "opensfx-test" if test else "opensfx-train", f"{k:02d}", ffmpeg_decode(wav))
        bar(1)
    # alsa's Noise.wav: recorded white-ish noise, joins the train 'white' family
    add("train", "white", "alsa", "Noise", ffmpeg_decode(roots["alsa-utils"] / "usr/share/sounds/alsa/Noise.wav"))
    # alert sounds (test)
    icons = sorted(p for p in (roots["sound-icons"] / "usr/share/sounds/sound-icons").glob("*.wav")
                   if not p.is_symlink())
    fd = sorted(p for p in (roots["sound-theme-freedesktop"] / "usr/share/sounds/freedesktop/stereo").glob("*.oga")
                if not p.is_symlink() and not p.name.startswith("audio-channel-"))  # those are spoken words
    for p, x in zip(icons + fd, ffmpeg_decode_many(icons + fd, workers, bar)):
        add("test", "alerts", "alerts", p.stem, x)
    # music on hold (test): 10 s excerpts, at most music_seconds in all
    moh = sorted((roots["asterisk-moh-opsound-g722"] / "usr/share/asterisk/moh").glob("*.g722"))
    excerpts = []
    for p in moh:
        x = ffmpeg_decode(p, input_format="g722")
        bar(1)
        for j in range(len(x) // (10 * SR)):
            excerpts.append((f"{p.stem}-{j:03d}", x[j * 10 * SR:(j + 1) * 10 * SR]))
    for i in sorted(rng.permutation(len(excerpts))[: int(music_seconds // 10)]):
        add("test", "music", "music", *excerpts[i])
    return items


def _babble(train_speech: list[dict[str, Any]], n: int, seconds: float, rng: np.random.Generator
            ) -> list[dict[str, Any]]:
    """``n`` babble clips of ``seconds``: sums of 3-8 talkers of ``train_speech`` (distinct speakers where possible)."""
    by_spk: dict[str, list[np.ndarray]] = {}
    for it in train_speech:
        by_spk.setdefault(it["speaker"], []).append(it["audio"])
    speakers = sorted(by_spk)
    L = int(seconds * SR)
    out = []
    for k in range(n):
        talkers = rng.choice(len(speakers), size=min(len(speakers), int(rng.integers(3, 9))), replace=False)
        mix = np.zeros(L)
        for t in talkers:
            utts = by_spk[speakers[t]]
            parts, total = [], 0
            while total < L + SR:
                u = utts[int(rng.integers(len(utts)))]
                parts += [u, np.zeros(int(rng.uniform(0.05, 0.3) * SR), np.float32)]
                total += len(u) + len(parts[-1])
            y = np.concatenate(parts)
            s = int(rng.integers(0, len(y) - L + 1))
            y = y[s:s + L].astype(np.float64)
            mix += y / (np.sqrt(np.mean(y * y)) + 1e-9) * 10 ** (rng.uniform(-3, 3) / 20)
        out.append({"id": f"babble/{k:03d}", "family": "babble", "source": "babble", "split": "train",
                    "audio": _peak_norm(mix)})
    return out


def _recipes(split: str, per_family: int, ltas: list[float] | None, rng: np.random.Generator) -> list[dict[str, Any]]:
    return noise_recipes(GENERATED[split], per_family, rng, "gen", ltas)


def _take(items: list[dict[str, Any]], seconds: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A random subset of ``items`` (kept in order) with about ``seconds`` of audio (all if they hold less)."""
    total = sum(len(it["audio"]) for it in items) / SR
    if seconds >= total:
        return list(items)
    keep, acc = [], 0.0
    for i in rng.permutation(len(items)):
        if acc >= seconds:
            break
        keep.append(int(i))
        acc += len(items[i]["audio"]) / SR
    return [items[i] for i in sorted(keep)]


def _seconds(items: list[dict[str, Any]]) -> float:
    return sum(len(it["audio"]) for it in items) / SR


# ----------------------------------------------------------------------------------------------- main entry
def build_pools(out_dir: str | Path, *, install: bool = True, max_mib: float = 40.0, progress: bool = True,
                cache_dir: str | Path | None = None, seed: int = 0, espeak_train_hours: float = 1.5,
                espeak_test_minutes: float = 8.0, asterisk_test_minutes: float = 12.0, music_minutes: float = 5.0,
                train_rooms: int = 500, test_rooms: int = 100, opus_level: float = 0.92, espeak_share: float = 0.2,
                workers: int = 2) -> Path:
    """Build the speech/noise/RIR pools into ``out_dir`` (≤ ``max_mib`` MiB in all) and return its path.

    ``install``: fetch missing Debian packages (``apt-get download`` into the cache) and install ffmpeg and
    espeak-ng with apt-get (needs root). ``cache_dir`` (default ``<out_dir>_cache``) keeps the downloaded
    packages and decoded sources. Train speech fills what the size budget leaves after the test speech and the
    noise: ``espeak_share`` of it espeak-ng speech (of ``espeak_train_hours`` synthesised), then all Asterisk
    en/es/fr/ru prompts, then KDE words of the training languages, then more espeak. Test speech: Asterisk Italian (``asterisk_test_minutes``), KDE words of the test languages and
    ``espeak_test_minutes`` of espeak test voices. RIRs: ``train_rooms`` × 4 and ``test_rooms`` × 3 positions.
    A complete ``out_dir`` (valid manifest) is left untouched.
    """
    out_dir = Path(out_dir)
    say = print if progress else (lambda *a, **k: None)
    if (out_dir / "manifest.json").is_file():
        try:
            load_manifest(out_dir)
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"{out_dir} holds an incomplete or corrupt pools folder ({e}); delete it and rebuild") from e
        say(f"speech pools already complete in {out_dir}")
        say(format_summary(pools_summary(out_dir)))
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists, is not empty and is not a speech pools folder")
    if max_mib <= 1:
        raise ValueError(f"max_mib must be more than 1; got {max_mib}")

    from linseq.data.speech.sources import ensure_packages, ensure_tools, load_cache, save_cache, tool_versions

    for stale in list(out_dir.parent.glob(f".{out_dir.name}.staging*")) + list(
            out_dir.parent.glob(f"..{out_dir.name}.staging.partial-*")):
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted build

    t_start = time.time()
    cache = Path(cache_dir) if cache_dir is not None else out_dir.parent / f"{out_dir.name}_cache"
    cache.mkdir(parents=True, exist_ok=True)
    ensure_tools(install)
    roots, versions = ensure_packages(cache, install)
    say(f"sources: {len(versions)} Debian packages in {cache}")
    stats = _Stats()

    def bar_for(desc: str, total: int | None):
        if not progress:
            return (lambda n=1: None), (lambda: None)
        from tqdm import tqdm

        b = tqdm(total=total, desc=desc, unit="file")
        return b.update, b.close

    def cached(name: str, total: int | None, fn):
        path = cache / "sources" / f"v{BUILD_VERSION}-seed{seed}-{name}.npz"
        stat_path = path.with_suffix(".json")
        items = load_cache(path)
        if items is not None:
            if stat_path.is_file():
                for k, v in json.loads(stat_path.read_text()).items():
                    stats.add(k, v)
            return items
        local = _Stats()
        upd, close = bar_for(name, total)
        try:
            items = fn(local, upd)
        finally:
            close()
        save_cache(path, items)
        stat_path.write_text(json.dumps(local))
        for k, v in local.items():
            stats.add(k, v)
        return items

    words_file = roots["wamerican"] / "usr/share/dict/american-english"
    words = sorted({w for w in words_file.read_text(errors="replace").split()
                    if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 12})

    asterisk = cached("asterisk", 2800, lambda st, bar: _collect_asterisk(roots, np.random.default_rng([seed, 1]), st, workers, bar))
    kde = cached("kde", 3400, lambda st, bar: _collect_kde(roots, np.random.default_rng([seed, 2]), st, workers, bar))
    esp_train = cached(f"espeak-train-{espeak_train_hours:g}h", None, lambda st, bar: _collect_espeak(
        "train", espeak_train_hours * 3600, words, seed, st, workers, bar))
    esp_test = cached(f"espeak-test-{espeak_test_minutes:g}min", None, lambda st, bar: _collect_espeak(
        "test", espeak_test_minutes * 60, words, seed, st, workers, bar))
    noise = cached(f"noise-music{music_minutes:g}min", 130, lambda st, bar: _collect_noise(
        roots, st, music_minutes * 60, np.random.default_rng([seed, 3]), workers, bar))

    # ---- the recipe's activity rule (FullSubNet keeps clean files with activity ≥ 0.6)
    def active(items):
        keep = [it for it in items if activity(it["audio"], SR) >= 0.6]
        stats.add("dropped_low_activity", len(items) - len(keep))
        return keep

    asterisk, kde, esp_train, esp_test = active(asterisk), active(kde), active(esp_train), active(esp_test)

    # ---- splits
    rng = np.random.default_rng([seed, 4])
    real = asterisk + kde
    train_real = [it for it in real if _split_of(it["language"]) == "train"]
    test_real = [it for it in real if _split_of(it["language"]) == "test"]
    test_ast = [it for it in test_real if it["source"].startswith("asterisk")]
    test_real = _take(test_ast, asterisk_test_minutes * 60, rng) + [it for it in test_real if it not in test_ast]
    test_speech = test_real + esp_test
    assert all(_split_of(it["language"]) == "train" for it in train_real + esp_train)
    assert all(_split_of(it["language"]) == "test" for it in test_speech)
    babble = _babble(train_real + esp_train, 40, 6.0, np.random.default_rng([seed, 5]))
    noise_items = {s: [it for it in noise + babble if it["split"] == s] for s in SPLITS}
    for s in SPLITS:
        fams = {it["family"] for it in noise_items[s]} | set(GENERATED[s])
        assert fams <= set(NOISE_FAMILIES[s]), (s, fams)
    assert not set(NOISE_FAMILIES["train"]) & set(NOISE_FAMILIES["test"])

    rir_rng = {"train": np.random.default_rng([seed, 6, 0]), "test": np.random.default_rng([seed, 6, 1])}
    rirs = {
        "train": [r for k in range(train_rooms) for r in sample_rir_params(rir_rng["train"], f"train-room{k:04d}", 4)],
        "test": [r for k in range(test_rooms) for r in sample_rir_params(rir_rng["test"], f"test-room{k:04d}", 3)],
    }
    train_dims = {tuple(r["dims"]) for r in rirs["train"]}
    assert not any(tuple(r["dims"]) in train_dims for r in rirs["test"])

    # ---- size budget: measure the codec's bytes per second, keep test and noise whole, fit train speech
    sample = np.concatenate([it["audio"] for it in (train_real[:40] + esp_train[:20])])[: 90 * SR]
    bps = len(encode_audio(sample, SR, "opus", opus_level)) / (len(sample) / SR)
    budget = max_mib * 2**20 * 0.97
    n_entries = len(train_real) + len(esp_train) + len(test_speech) + sum(len(v) for v in noise_items.values())
    fixed = bps * (_seconds(test_speech) + sum(_seconds(v) for v in noise_items.values())) \
        + 90 * n_entries + 260 * (len(rirs["train"]) + len(rirs["test"])) + 40_000
    say(f"codec: {bps * 8 / 1000:.1f} kbit/s; fixed part (test speech, noise, manifest) ≈ {fixed / 2**20:.1f} MiB")
    left = budget - fixed
    if left <= 0:
        raise ValueError(f"max_mib={max_mib} is too small: test speech and noise alone need about "
                         f"{fixed / 2**20:.1f} MiB")
    ast_train = [it for it in train_real if it["source"].startswith("asterisk")]
    kde_train = [it for it in train_real if not it["source"].startswith("asterisk")]
    avail = (_seconds(ast_train), _seconds(kde_train), _seconds(esp_train))

    def allocate(total: float) -> tuple[float, float, float]:
        # espeak gets espeak_share of the train speech first (voice variety), then Asterisk sentences, then KDE
        # words, then more espeak
        esp = min(avail[2], espeak_share * total)
        ast = min(avail[0], total - esp)
        kde = min(avail[1], total - esp - ast)
        esp += min(avail[2] - esp, total - esp - ast - kde)
        return ast, kde, esp

    train_seconds = left / bps
    ltas = long_term_spectrum_db([it["audio"] for it in train_real[::4] + esp_train[::4]])
    recipes = {"train": _recipes("train", 24, ltas, np.random.default_rng([seed, 9, 0])),
               "test": _recipes("test", 24, None, np.random.default_rng([seed, 9, 1]))}
    meta = {
        "builder": "linseq.data.speech.build", "build_version": BUILD_VERSION, "seed": seed, "max_mib": max_mib,
        "test_languages": list(TEST_LANGUAGES), "noise_families": {k: list(v) for k, v in NOISE_FAMILIES.items()},
        "espeak": {"languages": {k: list(v) for k, v in ESPEAK_LANGUAGES.items()},
                   "variants": {k: list(v) for k, v in ESPEAK_VARIANTS.items()}},
        "debian_packages": versions, "tools": tool_versions(), "python": platform.python_version(),
        "numpy": np.__version__, "dropped": dict(stats), "speech_ltas_db": ltas,
    }
    try:
        import soundfile

        meta["soundfile"] = soundfile.__version__
        meta["libsndfile"] = soundfile.__libsndfile_version__
    except ImportError:  # pragma: no cover
        pass
    try:
        from linseq.io import git_commit

        meta["linseq_commit"] = git_commit()
    except Exception:  # pragma: no cover
        pass

    staging = out_dir.parent / f".{out_dir.name}.staging"
    encoded: dict = {}
    strip = lambda items: [{k: v for k, v in it.items() if k not in ("split", "espeak")} for it in items]  # noqa: E731
    for _attempt in range(4):
        keep = allocate(train_seconds)
        sel_rng = np.random.default_rng([seed, 10])
        train_speech = (_take(ast_train, keep[0], sel_rng) + _take(kde_train, keep[1], sel_rng)
                        + _take(esp_train, keep[2], sel_rng))
        say(f"train speech: {_seconds(train_speech) / 3600:.2f} h (Asterisk {keep[0] / 3600:.2f} of "
            f"{avail[0] / 3600:.2f} h, KDE words {keep[1] / 3600:.2f} of {avail[1] / 3600:.2f} h, espeak "
            f"{keep[2] / 3600:.2f} of {avail[2] / 3600:.2f} h); test speech {_seconds(test_speech) / 3600:.2f} h")
        write_pools_from_arrays(
            staging,
            speech={"train": strip(train_speech), "test": strip(test_speech)},
            noise={s: strip(noise_items[s]) for s in SPLITS},
            generated_noise=recipes, rirs=rirs, meta={**meta, "build_seconds": round(time.time() - t_start)},
            codec="opus", opus_level=opus_level, overwrite=True, progress=progress, workers=workers,
            encode_cache=encoded,
        )
        size = folder_mib(staging) * 2**20
        if size <= max_mib * 2**20:
            break
        over = (size - budget) / bps * 1.05
        say(f"{size / 2**20:.1f} MiB is over the {max_mib} MiB budget; dropping {over:.0f} s of train speech")
        train_seconds -= over
    else:
        raise RuntimeError(f"could not fit the pools into {max_mib} MiB")
    _swap_into_place(staging, out_dir)
    say(f"speech pools written to {out_dir} in {time.time() - t_start:.0f} s")
    say(format_summary(pools_summary(out_dir)))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m linseq.data.speech.build OUT_DIR [--max-mib 40] [--no-install] ...``."""
    p = argparse.ArgumentParser(
        prog="python -m linseq.data.speech.build",
        description="Build the offline speech-enhancement pools (speech, noise, RIRs) from Debian packages.",
        epilog="example: python -m linseq.data.speech.build data/speech_pools --max-mib 40")
    p.add_argument("out_dir", type=Path, help="output folder (created; left as it is if already complete)")
    p.add_argument("--max-mib", type=float, default=40.0, help="size budget of the whole folder (default 40)")
    p.add_argument("--no-install", action="store_true", help="do not fetch packages or apt-get install tools")
    p.add_argument("--cache-dir", type=Path, default=None, help="downloads and decoded sources (default OUT_DIR_cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    a = p.parse_args(argv)
    from linseq.data.speech.sources import BuildError

    try:
        build_pools(a.out_dir, install=not a.no_install, max_mib=a.max_mib, progress=not a.quiet,
                    cache_dir=a.cache_dir, seed=a.seed)
    except (BuildError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
