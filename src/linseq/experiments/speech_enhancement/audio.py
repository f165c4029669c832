"""Enhance audio files of any length, rate and channel count with bounded memory (``linseq enhance``).

- Reading/writing: ``soundfile`` (WAV, FLAC, OGG/Vorbis, MP3 where libsndfile supports it, ...). The output keeps
  the input's sample rate, channel count, length and (when the output format allows) sample format.
- Other sample rates: polyphase resampling to 16 kHz and back (``scipy.signal.resample_poly``, Kaiser window),
  done block by block with margins so the result equals resampling the whole file at once.
- Stereo and multichannel: each channel is enhanced independently (the channels form the model's batch), so
  a stereo file stays stereo; the image between channels is not used.
- Long files: read in blocks, streamed through :class:`~linseq.models.speech.streaming.StreamingWaveEnhancer`
  (state carried from block to block, same result as processing the whole file), written as they come.
- Gain: no peak normalisation (unlike FullSubNet's writer); samples beyond ±1 are clipped only for integer
  output formats, and the number of clipped samples is reported.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from linseq.models.speech import SpeechMaskModel
from linseq.models.speech.streaming import StreamingWaveEnhancer

MODEL_RATE = 16000


def _require_soundfile():
    try:
        import soundfile as sf
    except ImportError:
        raise ValueError("reading audio needs the 'soundfile' package: pip install soundfile") from None
    return sf


def audio_info(path: str | os.PathLike):
    """``soundfile.info`` with one-line errors: FileNotFoundError (missing) or ValueError (not audio)."""
    sf = _require_soundfile()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not an audio file")
    try:
        return sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError for unreadable files
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not an audio file that soundfile can read ({msg})") from None


class BlockResampler:
    """Streaming ``resample_poly(x, up, down)`` over the first axis of ``[n, C]`` blocks; the concatenated output
    equals resampling the whole signal at once (zero padding at both ends, as ``resample_poly`` does)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        g = math.gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        half = 10 * max(self.up, self.down)  # resample_poly's filter half length, at the up-sampled rate
        self.margin = self.down * (half // (self.up * self.down) + 2)  # input samples, a multiple of down
        self.block = self.down * max(1, 16384 // self.down)
        self.buf: np.ndarray | None = None  # input from index self.start - margin on
        self.start = 0  # first input sample whose outputs are not produced yet (multiple of down)
        self.received = 0
        self.channels = 1

    def _resample(self, seg: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        return resample_poly(seg, self.up, self.down, axis=0)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed ``x [n, C]``; returns the output samples ready ``[k, C]``."""
        self.channels = x.shape[1]
        if self.up == self.down:
            return x
        if self.buf is None:
            self.buf = np.zeros((self.margin, x.shape[1]), dtype=np.float64)
        self.buf = np.concatenate([self.buf, x.astype(np.float64)])
        self.received += x.shape[0]
        out = []
        while self.received - self.start >= self.block + self.margin:
            seg = self.buf[: self.margin + self.block + self.margin]
            y = self._resample(seg)
            a = self.margin * self.up // self.down
            out.append(y[a: a + self.block * self.up // self.down])
            self.buf = self.buf[self.block:]
            self.start += self.block
        return np.concatenate(out) if out else np.zeros((0, x.shape[1]))

    def flush(self) -> np.ndarray:
        """Outputs of the remaining input; total output length is ``ceil(received * up / down)``."""
        if self.up == self.down or self.buf is None:
            return np.zeros((0, self.channels))
        seg = np.concatenate([self.buf, np.zeros((self.margin, self.buf.shape[1]))])
        y = self._resample(seg)
        a = self.margin * self.up // self.down
        n = -(-(self.received * self.up) // self.down) - self.start * self.up // self.down
        self.buf = None
        return y[a: a + n]


def output_subtype(sf, fmt: str, subtype: str) -> str | None:
    """Keep the input's sample format when the output format supports it."""
    return subtype if sf.check_format(fmt, subtype) else None


def enhance_file(
    model: SpeechMaskModel, src: str | os.PathLike, dst: str | os.PathLike, block_seconds: float = 10.0,
    on_progress: Callable[[int], None] | None = None, attenuation_limit_db: float | None = None,
) -> dict:
    """Enhance ``src`` into ``dst`` (format from ``dst``'s suffix, falling back to WAV); returns a small report.

    ``on_progress(n)`` is called with the number of input frames (samples per channel) consumed.
    ``attenuation_limit_db``: limit the suppression to about this many dB (see ``StreamingWaveEnhancer``);
    None: no limit.
    """
    sf = _require_soundfile()
    info = audio_info(src)
    rate, channels, frames = info.samplerate, info.channels, info.frames
    dst = Path(dst)
    fmt = sf.available_formats()
    out_format = dst.suffix.lstrip(".").upper()
    if out_format not in fmt:
        out_format = "WAV"
    subtype = output_subtype(sf, out_format, info.subtype)
    to16, back = BlockResampler(rate, MODEL_RATE), BlockResampler(MODEL_RATE, rate)
    stream = StreamingWaveEnhancer(model, attenuation_limit_db)
    device = stream.device
    written, clipped = 0, 0
    integer = subtype is not None and subtype.startswith(("PCM", "ULAW", "ALAW"))
    if frames <= 0 or frames * MODEL_RATE / rate <= 256:
        raise ValueError(f"{src}: too short to enhance ({frames} samples at {rate} Hz; need more than 16 ms)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")

    def write(out_f, y16: np.ndarray) -> None:
        nonlocal written, clipped
        y = back.process(y16)
        y = y[: max(0, frames - written)]
        if integer:
            clipped += int(np.count_nonzero(np.abs(y) > 1.0))
            y = np.clip(y, -1.0, 1.0)
        out_f.write(y)
        written += y.shape[0]

    try:
        with sf.SoundFile(str(src)) as f_in, sf.SoundFile(str(tmp), "w", rate, channels, subtype, format=out_format) as f_out:
            block = max(1, int(block_seconds * rate))
            while True:
                x = f_in.read(block, dtype="float32", always_2d=True)  # [n, C]
                if x.shape[0] == 0:
                    break
                x16 = to16.process(x)
                if x16.shape[0]:
                    y = stream.process(torch.from_numpy(np.ascontiguousarray(x16.T, dtype=np.float32)).to(device))
                    write(f_out, y.cpu().numpy().T.astype(np.float64))
                if on_progress is not None:
                    on_progress(x.shape[0])
            x16 = to16.flush()
            if x16.shape[0]:
                y = stream.process(torch.from_numpy(np.ascontiguousarray(x16.T, dtype=np.float32)).to(device))
                write(f_out, y.cpu().numpy().T.astype(np.float64))
            y = stream.flush()
            write(f_out, y.cpu().numpy().T.astype(np.float64))
            tail = back.flush()[: max(0, frames - written)]
            if integer:
                clipped += int(np.count_nonzero(np.abs(tail) > 1.0))
                tail = np.clip(tail, -1.0, 1.0)
            f_out.write(tail)
            written += tail.shape[0]
            if written < frames:  # rounding of the two resamplings: pad the last few samples
                f_out.write(np.zeros((frames - written, channels)))
                written = frames
        os.replace(tmp, dst)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return {"input": str(src), "output": str(dst), "sample_rate": rate, "channels": channels, "frames": frames,
            "clipped_samples": clipped, "format": out_format, "subtype": subtype}
