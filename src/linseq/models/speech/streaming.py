"""Frame-by-frame enhancement with carried state; equals offline processing of the whole input.

The model sees input frame t together with frames up to t + look_ahead. :class:`StreamingEnhancer` feeds one noisy
STFT frame per :meth:`~StreamingEnhancer.step` and returns the enhanced frame ``look_ahead`` frames later
(``None`` while the look-ahead buffer fills); :meth:`~StreamingEnhancer.flush` feeds the zero frames that offline
processing appends and returns the last ``look_ahead`` enhanced frames. Algorithmic latency: the 32 ms window plus
``look_ahead`` × 16 ms.

:class:`StreamingWaveEnhancer` does the same on waveforms: chunks of samples in, enhanced samples out (STFT framing
with the same reflect padding at both ends, per-frame inverse FFT and overlap-add with the window-square envelope),
so the concatenated output equals offline ``istft(apply_crm(model(|stft(x)|), stft(x)), length=len(x))``.
"""

from __future__ import annotations

import math
from collections import deque

import torch

from linseq.models.speech.fullsubnet import SpeechMaskModel
from linseq.models.speech.signal import HOP_LENGTH, N_FFT, apply_crm, check_finite


def input_share(attenuation_limit_db: float | None) -> float:
    """The share ``a = 10 ** (−dB / 20)`` of the input kept so that suppression stays within about
    ``attenuation_limit_db`` (0.0 for ``None``: no limit); ValueError unless the limit is a finite number ≥ 0 dB."""
    if attenuation_limit_db is None:
        return 0.0
    if not math.isfinite(attenuation_limit_db) or attenuation_limit_db < 0:
        raise ValueError(f"the attenuation limit must be a finite number of dB >= 0; got {attenuation_limit_db}")
    return 10 ** (-attenuation_limit_db / 20)


class StreamingEnhancer:
    """Carry a model's state across frames: ``step(noisy [B, 257] complex) -> enhanced [B, 257] complex or None``.

    ``return_mask=True`` makes step/flush return the compressed cRM frame ``[B, 2, 257]`` instead.
    Requires a model built with ``norm="cumulative"``. Works for every ``shrink_size`` of Fast FullSubNet.
    """

    def __init__(self, model: SpeechMaskModel, return_mask: bool = False) -> None:
        if not isinstance(model, SpeechMaskModel):
            raise TypeError(f"model must be a FullSubNet or FastFullSubNet; got {type(model).__name__}")
        if model.norm != "cumulative":
            raise ValueError(f"streaming requires norm='cumulative'; the model has norm={model.norm!r}")
        self.model, self.return_mask = model, return_mask
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.state = self.model.init_state()
        self.pending: deque[torch.Tensor] = deque()  # noisy frames whose enhanced frame is not out yet
        self.fed = 0  # frames fed to the model, look-ahead zeros included

    @torch.no_grad()
    def _feed(self, mag: torch.Tensor) -> torch.Tensor | None:
        mask, self.state = self.model.step(mag, self.state)
        self.fed += 1
        if self.fed <= self.model.look_ahead or not self.pending:
            return None  # still filling the look-ahead: this output belongs to no real frame
        noisy = self.pending.popleft()
        if self.return_mask:
            return mask
        return apply_crm(mask[..., None], noisy[..., None])[..., 0]

    def step(self, noisy_frame: torch.Tensor) -> torch.Tensor | None:
        """Feed one complex noisy frame ``[B, 257]``; get the enhanced frame from ``look_ahead`` frames ago."""
        if not torch.is_complex(noisy_frame) or noisy_frame.dim() != 2:
            raise ValueError(f"noisy_frame must be a complex tensor [B, 257]; got {noisy_frame.dtype} "
                             f"{tuple(noisy_frame.shape)}")
        self.pending.append(noisy_frame)
        return self._feed(noisy_frame.abs())

    def flush(self) -> list[torch.Tensor]:
        """End of stream: feed ``look_ahead`` zero frames; returns the remaining enhanced frames, oldest first."""
        out = []
        if self.pending:
            zero = torch.zeros_like(self.pending[0].real)
            for _ in range(self.model.look_ahead):
                y = self._feed(zero)
                if y is not None:
                    out.append(y)
        self.reset()
        return out


class StreamingWaveEnhancer:
    """Enhance a waveform chunk by chunk with bounded memory: ``process(chunk [B, n]) -> [B, k]``, ``flush() -> [B, r]``.

    ``B`` is the number of independent signals (e.g. the channels of a stereo file), ``n`` any number of 16 kHz
    samples per call (also 0). The outputs of all calls, concatenated, have the input's length and equal offline
    processing of the whole signal (up to float rounding). Output lags input by ``(look_ahead + 1) * 256`` samples
    plus what is needed to complete a frame; the first frame waits for 257 samples (reflect padding).
    Requires a model with ``norm="cumulative"``; runs on the model's device, float32.

    ``attenuation_limit_db``: limit the suppression to about this many dB. Each enhanced frame becomes
    ``(1 − a) · M ⊙ Y + a · Y`` with ``a = 10 ** (−dB / 20)``, so the output is ``1 − a`` of the enhanced wave
    plus ``a`` of the input (0 dB gives the input back; ``None``, the default, the model's output alone).
    """

    def __init__(self, model: SpeechMaskModel, attenuation_limit_db: float | None = None) -> None:
        if not isinstance(model, SpeechMaskModel):
            raise TypeError(f"model must be a FullSubNet or FastFullSubNet; got {type(model).__name__}")
        if model.norm != "cumulative":
            raise ValueError(f"streaming requires norm='cumulative'; the model has norm={model.norm!r}")
        self.model = model
        self.input_share = input_share(attenuation_limit_db)
        p = next(model.parameters())
        self.device = p.device
        self.window = torch.hann_window(N_FFT, periodic=True, device=self.device, dtype=torch.float32)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self.state = self.model.init_state()
        self.buf: torch.Tensor | None = None  # input samples from original index self.buf_start on, [B, n]
        self.buf_start = 0
        self.received = 0
        self.next_frame = 0  # next analysis frame t (centred on sample 256 t)
        self.fed = 0  # model steps taken, look-ahead zeros included
        self.noisy_q: torch.Tensor | None = None  # complex [B, 257, k]: frames waiting for their mask
        self.out_frame = 0  # next enhanced frame to overlap-add
        self.ola: torch.Tensor | None = None  # [B, 256]: second half of the last frame added
        self.env = torch.zeros(HOP_LENGTH, device=self.device)
        self.emitted = 0

    def _padded(self, start: int, stop: int, length: int | None) -> torch.Tensor:
        """Samples ``start .. stop-1`` of the reflect-padded signal, original coordinates (may be < 0 or >= L)."""
        idx = torch.arange(start, stop, device=self.device)
        idx = idx.abs()  # reflect at 0 (x[-j] = x[j])
        if length is not None:
            idx = torch.where(idx > length - 1, 2 * (length - 1) - idx, idx)  # reflect at L-1
        return self.buf[:, idx - self.buf_start]

    def _analyse(self, t_stop: int, length: int | None) -> torch.Tensor | None:
        """STFT frames ``next_frame .. t_stop-1`` -> complex ``[B, 257, k]``."""
        t0 = self.next_frame
        if t_stop <= t0:
            return None
        seg = self._padded(HOP_LENGTH * t0 - HOP_LENGTH, HOP_LENGTH * (t_stop - 1) + HOP_LENGTH, length)
        spec = torch.stft(seg, N_FFT, HOP_LENGTH, N_FFT, window=self.window, center=False, return_complex=True)
        self.next_frame = t_stop
        keep = HOP_LENGTH * t_stop - HOP_LENGTH  # the next frame starts here
        if keep > self.buf_start:
            self.buf = self.buf[:, keep - self.buf_start:]
            self.buf_start = keep
        return spec

    def _model(self, spec: torch.Tensor | None, zeros: int = 0) -> list[torch.Tensor]:
        """Feed frames (and look-ahead zero frames) to the model; return enhanced complex frames ``[B, 257, k]``."""
        B = self.buf.shape[0]
        mags = []
        if spec is not None:
            self.noisy_q = spec if self.noisy_q is None else torch.cat([self.noisy_q, spec], dim=-1)
            mags.append(spec.abs())
        if zeros:
            mags.append(torch.zeros(B, spec.shape[1] if spec is not None else 257, zeros, device=self.device))
        if not mags:
            return []
        mag = torch.cat(mags, dim=-1)
        with torch.no_grad():
            mask, self.state = self.model.step_chunk(mag, self.state)
        first = self.fed
        self.fed += mag.shape[-1]
        skip = max(0, self.model.look_ahead - first)  # outputs of the look-ahead fill belong to no frame
        mask = mask[..., skip:]
        n = min(mask.shape[-1], 0 if self.noisy_q is None else self.noisy_q.shape[-1])
        if n == 0:
            return []
        noisy, self.noisy_q = self.noisy_q[..., :n], self.noisy_q[..., n:]
        enhanced = apply_crm(mask[..., :n], noisy)
        if self.input_share:
            enhanced = (1 - self.input_share) * enhanced + self.input_share * noisy
        return [enhanced]

    def _overlap_add(self, enhanced: list[torch.Tensor]) -> list[torch.Tensor]:
        """Inverse FFT + window + overlap-add; returns completed original samples in order."""
        out = []
        w = self.window
        for spec in enhanced:
            frames = torch.fft.irfft(spec, n=N_FFT, dim=1) * w[None, :, None]  # [B, 512, k]
            if self.ola is None:
                self.ola = frames.new_zeros(frames.shape[0], HOP_LENGTH)
            for j in range(frames.shape[-1]):
                t = self.out_frame
                y = self.ola + frames[:, :HOP_LENGTH, j]
                env = self.env + w[:HOP_LENGTH] ** 2
                self.ola, self.env = frames[:, HOP_LENGTH:, j], w[HOP_LENGTH:] ** 2
                self.out_frame += 1
                if t == 0:
                    continue  # padded samples before the signal start
                out.append(y / torch.where(env > 1e-11, env, torch.ones_like(env)))
        return out

    def _emit(self, pieces: list[torch.Tensor], limit: int | None = None) -> torch.Tensor:
        B = 1 if self.buf is None else self.buf.shape[0]
        y = torch.cat(pieces, dim=-1) if pieces else torch.zeros(B, 0, device=self.device)
        if limit is not None:
            y = y[:, : max(0, limit - self.emitted)]
        self.emitted += y.shape[-1]
        return y

    def process(self, chunk: torch.Tensor) -> torch.Tensor:
        """Feed ``chunk [B, n]`` (or ``[n]`` for one signal) of 16 kHz samples; returns the enhanced samples ready."""
        if not torch.is_tensor(chunk) or not chunk.is_floating_point():
            raise TypeError(f"chunk must be a floating-point tensor; got {getattr(chunk, 'dtype', type(chunk))}")
        if chunk.dim() == 1:
            chunk = chunk[None]
        if chunk.dim() != 2:
            raise ValueError(f"chunk must have shape [B, n] or [n]; got {tuple(chunk.shape)}")
        if self.buf is not None and chunk.shape[0] != self.buf.shape[0]:
            raise ValueError(f"chunk must keep the batch size {self.buf.shape[0]} of the stream; got {chunk.shape[0]}")
        check_finite("chunk", chunk)
        chunk = chunk.to(self.device, torch.float32)
        self.buf = chunk if self.buf is None else torch.cat([self.buf, chunk], dim=-1)
        self.received += chunk.shape[-1]
        if self.received <= HOP_LENGTH:
            return self._emit([])
        t_stop = (self.received - HOP_LENGTH) // HOP_LENGTH + 1  # frames whose samples all arrived
        return self._emit(self._overlap_add(self._model(self._analyse(t_stop, None))))

    def flush(self) -> torch.Tensor:
        """End of the stream: pad the end (reflect), drain the look-ahead; returns the remaining samples."""
        L = self.received
        if self.buf is None:
            return torch.zeros(1, 0, device=self.device)
        if L <= HOP_LENGTH:
            raise ValueError(f"the stream must have more than {HOP_LENGTH} samples (16 ms); got {L}")
        spec = self._analyse(1 + L // HOP_LENGTH, L)
        pieces = self._overlap_add(self._model(spec, zeros=self.model.look_ahead))
        tail = self.ola / self.env  # after the last frame: only its second half covers these samples
        out = self._emit(pieces + [tail], limit=L)
        self.reset()
        return out
