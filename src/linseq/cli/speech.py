"""``linseq speech``: data, training, evaluation and complexity of FullSubNet / Fast FullSubNet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "speech"
HELP = "speech enhancement: build data, train, evaluate, measure complexity (FullSubNet, Fast FullSubNet)"
DESCRIPTION = """\
Speech-enhancement workflow for FullSubNet and Fast FullSubNet (docs/speech.md):

  build-data  build the speech / noise / RIR pools from packaged sounds, and the DNS-2020-shaped test set
  train       train one model on on-the-fly mixtures (MSE on the compressed cRM, Adam 1e-3, AMP on GPU)
  eval        enhance the test set with a checkpoint, `noisy` or `baseline`; WB/NB-PESQ, STOI, SI-SDR
  average     one checkpoint with the mean weights of several (runs continued from one checkpoint)
  rtf         parameters, GMAC/s and real-time factors (1 CPU thread, GPU) of the four models"""
EPILOG = """\
examples:
  linseq speech build-data data/speech_pools
  linseq speech train --preset ci --out runs/speech/ci           # minutes on a CPU (synthetic data without pools)
  linseq speech train --preset gpu --model fast_fullsubnet --shrink 2 --minutes 30 --out runs/speech/fast_m2
  linseq speech train --preset gpu --model fullsubnet --steps 20000 --out runs/speech/fullsubnet --resume
  linseq speech eval --checkpoint runs/speech/fast_m2 --test-set data/speech_pools/test_set --out results/
  linseq speech eval --checkpoint baseline --test-set data/speech_pools/test_set --out results/
  linseq speech average runs/a runs/b runs/c --out runs/soup
  linseq speech rtf --out results/"""

DEFAULT_POOLS = Path("data/speech_pools")
TRAIN_ITEMS = 10**9  # mixtures per epoch: more than any run draws


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from linseq.data.speech.noise import EXTRA_FAMILIES
    sub = parser.add_subparsers(dest="speech_command", metavar="<step>")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("build-data", help="build the pools and the test set", formatter_class=fmt,
                       description="Build the speech, noise and RIR pools from packaged sounds (installs Debian "
                                   "packages it needs), then the deterministic test set in OUT/test_set.",
                       epilog="example:\n  linseq speech build-data data/speech_pools")
    p.add_argument("out", nargs="?", type=Path, default=DEFAULT_POOLS, help=f"pools folder (default {DEFAULT_POOLS})")
    p.add_argument("--test-set", type=Path, default=None, help="test-set folder (default OUT/test_set)")
    p.add_argument("--seed", type=int, default=None, help="test-set seed (default: the data package's)")
    p.add_argument("--skip-pools", action="store_true", help="only (re)build the test set from existing pools")
    p.set_defaults(_speech=_build_data)

    p = sub.add_parser("train", help="train FullSubNet or Fast FullSubNet", formatter_class=fmt,
                       description="Train one model on on-the-fly mixtures from the pools (or synthetic tones "
                                   "with --data synthetic). Writes OUT/best (best validation score, float16), "
                                   "OUT/last (for --resume), OUT/metrics.json and OUT/loss.png.",
                       epilog="examples:\n  linseq speech train --preset ci --out runs/speech/ci\n"
                              "  linseq speech train --preset gpu --model fast_fullsubnet --shrink 8 --minutes 30 "
                              "--out runs/speech/fast_m8\n"
                              "  linseq speech train --preset gpu --model fast_fullsubnet --sequence lightning "
                              "--out runs/speech/fast_m2_lightning\n"
                              "  linseq speech train --preset gpu --sequence lightning --init-from "
                              "runs/speech/fast_m2_lightning/best --seed 1 --minutes 30 --lr 8e-4 --lr-schedule cosine "
                              "--warmup-steps 300 --snr-range -5 25 --out runs/speech/fast_m2_lightning_more")
    p.add_argument("--preset", choices=("ci", "gpu"), default="ci",
                   help="ci: tiny model, CPU minutes; gpu: published sizes and batch (default ci)")
    p.add_argument("--model", choices=("fast_fullsubnet", "fullsubnet"), default="fast_fullsubnet")
    p.add_argument("--shrink", type=int, default=2, help="Fast FullSubNet's time down-sampling m (default 2)")
    p.add_argument("--sequence", choices=("lstm", "lightning"), default="lstm", help="sequence layers (default lstm)")
    p.add_argument("--data", default=None,
                   help=f"pools folder, or 'synthetic' (default {DEFAULT_POOLS}; the ci preset falls back to "
                        "synthetic when it is missing)")
    p.add_argument("--out", type=Path, default=Path("runs/speech/run"), help="run folder (default runs/speech/run)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (budget)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget in minutes (validation included)")
    p.add_argument("--batch-size", type=int, default=None, help="default: preset (gpu: 72 Fast, 32 FullSubNet)")
    p.add_argument("--snr-range", type=int, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="SNR range of the training mixtures in dB (default: the recipe's -5 20)")
    p.add_argument("--extra-noise", nargs="+", default=None, choices=EXTRA_FAMILIES, metavar="FAMILY",
                   help=f"generated noise families ({', '.join(EXTRA_FAMILIES)}) added to the training and validation "
                        "mixtures beside the pools' own; none by default")
    p.add_argument("--clean-proportion", type=float, default=None, metavar="P",
                   help="leave the noise out of this share of the training mixtures (default 0, as published), so "
                        "the model also sees inputs that are already clean and learns to pass them through")
    p.add_argument("--speech-eq-db", type=float, default=None, metavar="DB",
                   help="colour the speech of each training mixture (input and target alike) by a random smooth "
                        "gain curve with gains within ±DB at 125, 500, 2000 and 6000 Hz (default 0, as published), "
                        "so the model cannot learn one speech spectrum; 6 is a moderate setting")
    p.add_argument("--speed-perturb", type=float, default=None, metavar="P",
                   help="play each training utterance at a random speed in [1-P, 1+P] (pitch, formants and tempo "
                        "together; default 0, as published; at most 0.3): new voices from the training speakers; "
                        "validation mixtures stay unchanged")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3, as published)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="constant (default, as published) or cosine: decay from --lr to --lr-min over the budget "
                        "(steps, or wall time with --minutes alone)")
    p.add_argument("--lr-min", type=float, default=None, help="end of the cosine decay (default 1e-5)")
    p.add_argument("--sisdr-weight", type=float, default=None,
                   help="add this × (−SI-SDR in dB) of the enhanced wave to the cRM loss (default 0: cRM only, as "
                        "published). On a trained Fast FullSubNet the SI-SDR term's gradient is about 1,700× the cRM "
                        "loss's, so 5e-4 gives the two similar weight")
    p.add_argument("--stoi-weight", type=float, default=None,
                   help="add this × (−STOI-like intelligibility, 0..1) of the enhanced wave to the loss (default 0): "
                        "STOI's band envelopes and 384 ms correlations on the 16 kHz wave, close to pystoi's value. "
                        "`benchmarks/speech_loss_balance.py` prints its gradient against the cRM loss's")
    p.add_argument("--ema-decay", type=float, default=None,
                   help="keep an exponential moving average of the weights with this decay per step (e.g. 0.999, "
                        "about the last 1,000 steps; default 0: off); validation and the best checkpoint use the "
                        "average")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="linear learning-rate warm-up steps (default 0; useful with --init-from)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: preset)")
    p.add_argument("--val-every", type=int, default=None, help="validation and checkpoint period in steps")
    p.add_argument("--val-every-seconds", type=float, default=None,
                   help="also validate when this many seconds passed since the last validation")
    p.add_argument("--val-items", type=int, default=None, help="validation clips (fixed set)")
    p.add_argument("--val-seed", type=int, default=None,
                   help="seed of the fixed validation mixtures (default 10000, whatever --seed is, so runs that "
                        "continue each other with a new --seed validate on the same clips and their scores compare)")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "none"), default="auto",
                   help="mixed precision on CUDA (auto: bf16 if it works, else fp16)")
    p.add_argument("--drop-band", type=int, default=2, help="FullSubNet drop-band groups (1 disables; default 2)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last if present")
    p.add_argument("--init-from", default=None,
                   help="start from this checkpoint's weights (same model; fresh optimizer, e.g. a new --seed)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(_speech=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint, the noisy input or the baseline on the test set",
                       formatter_class=fmt,
                       description="Enhance every clip of the test set and report WB-PESQ, NB-PESQ (P.862.1 "
                                   "mapping, `pesq`), STOI (`pystoi`) and SI-SDR per subset (with_reverb, "
                                   "no_reverb). Writes OUT/eval_<name>.json and .md. PESQ/STOI are skipped with a "
                                   "note when their packages are missing.",
                       epilog="examples:\n  linseq speech eval --checkpoint runs/speech/fast_m2 --test-set "
                              "data/speech_pools/test_set --out results/\n"
                              "  linseq speech eval --checkpoint noisy --test-set data/speech_pools/test_set")
    p.add_argument("--checkpoint", required=True, help="checkpoint or run folder, 'noisy' or 'baseline'")
    p.add_argument("--test-set", type=Path, default=DEFAULT_POOLS / "test_set", help="test-set folder")
    p.add_argument("--out", type=Path, default=None, help="folder for eval_<name>.json/.md (default: print only)")
    p.add_argument("--name", default=None, help="file tag (default: the checkpoint folder's name)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None, help="metric processes (default: all cores)")
    p.add_argument("--limit", type=int, default=None, help="at most this many clips per subset (smoke runs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(_speech=_eval)

    p = sub.add_parser("average", help="average the weights of several checkpoints of one model",
                       formatter_class=fmt,
                       description="Write a checkpoint whose weights are the uniform mean of the given ones (a "
                                   "'model soup'). It makes sense for runs that continued one checkpoint (e.g. "
                                   "with --init-from), whose weights stay close; for unrelated runs the mean is "
                                   "usually worse than either. The checkpoints must hold the same model. The "
                                   "sources, their steps and weight hashes go into config.json.",
                       epilog="examples:\n  linseq speech average runs/speech/a runs/speech/b --out runs/speech/soup\n"
                              "  linseq speech eval --checkpoint runs/speech/soup --test-set data/speech_pools/test_set")
    p.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT", help="checkpoint or run folders (two or more)")
    p.add_argument("--out", type=Path, required=True, help="folder of the averaged checkpoint")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="stored precision (default float16: half the size; the means are taken in float32)")
    p.set_defaults(_speech=_average)

    p = sub.add_parser("rtf", help="complexity table: parameters, GMAC/s, real-time factors", formatter_class=fmt,
                       description="Parameters, counted GMAC per second of audio and real-time factors (offline "
                                   "and frame by frame on one CPU thread; offline on the GPU if present) of "
                                   "FullSubNet, Fast FullSubNet m=2 and m=8, and the Lightning variant.",
                       epilog="example:\n  linseq speech rtf --out results/")
    p.add_argument("--out", type=Path, default=None, help="folder for complexity.json/.md")
    p.add_argument("--seconds", type=float, default=10.0, help="audio length for offline RTF (default 10)")
    p.add_argument("--stream-seconds", type=float, default=2.0, help="audio length for frame-by-frame RTF")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU measurements")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU measurement")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(_speech=_rtf)


def run(args: argparse.Namespace) -> int:
    fn = getattr(args, "_speech", None)
    if fn is None:
        from linseq.cli.main import build_parser

        build_parser().parse_args(["speech", "--help"])
        return 0
    try:
        return fn(args)
    except ImportError as err:  # optional packages: one clear line
        raise ValueError(str(err)) from None


def _build_data(args: argparse.Namespace) -> int:
    from linseq.data.speech import build_pools, build_test_set

    if not args.skip_pools:
        build_pools(args.out)
        print(f"pools: {args.out}")
    test_dir = args.test_set or args.out / "test_set"
    build_test_set(args.out, test_dir, **({} if args.seed is None else {"seed": args.seed}))
    print(f"test set: {test_dir}")
    print(f"next: linseq speech train --preset gpu --data {args.out} --out runs/speech/fast_m2")
    return 0


def _datasets(args: argparse.Namespace, cfg):
    """(train dataset, fixed validation pairs, description of the data)."""
    from linseq.experiments.speech_enhancement.synthetic import SyntheticMixtures
    from linseq.experiments.speech_enhancement.training import make_validation_set

    data = args.data
    if data is None:
        data = str(DEFAULT_POOLS)
        if args.preset == "ci" and not DEFAULT_POOLS.is_dir():
            print(f"note: no pools at {DEFAULT_POOLS}; training on synthetic tones (--data synthetic)")
            data = "synthetic"
    if data == "synthetic":
        for flag, value in (("--clean-proportion", cfg.clean_proportion), ("--speech-eq-db", cfg.speech_eq_db),
                            ("--speed-perturb", cfg.speed_perturb)):
            if value:
                raise ValueError(f"{flag} needs real pools (--data DIR); the synthetic data has no option for it")
        train = SyntheticMixtures(num_items=TRAIN_ITEMS, seconds=cfg.segment_seconds, seed=cfg.seed)
        val = make_validation_set(SyntheticMixtures(cfg.val_items, cfg.val_seconds, seed=cfg.val_seed),
                                  cfg.val_items)
        return train, val, "synthetic"
    pools = Path(data)
    if not pools.is_dir():
        raise FileNotFoundError(f"no pools at {pools}: build them with `linseq speech build-data {pools}` "
                                "or train on --data synthetic")
    from linseq.data.speech import SpeechMixer

    # one endless "epoch" (every index is its own mixture), so set_epoch, shared by the DataLoader workers, never
    # changes while they run and the stream position alone fixes the data (exact resume)
    mix = {"snr_range": tuple(cfg.snr_range)} if cfg.snr_range else {}
    if cfg.extra_noise:
        mix["extra_noise_families"] = tuple(cfg.extra_noise)
    train = SpeechMixer(pools, split="train", segment_seconds=cfg.segment_seconds, seed=cfg.seed,
                        num_items=TRAIN_ITEMS, clean_proportion=cfg.clean_proportion,
                        speech_eq_db=cfg.speech_eq_db, speed_perturb=cfg.speed_perturb, **mix)
    from linseq.data.speech import SPLITS

    # no separate validation split in the pools: fixed mixtures of the training split with their own seed (the test
    # split stays unseen until `linseq speech eval`)
    val_split = "val" if "val" in SPLITS else "train"
    val_mixer = SpeechMixer(pools, split=val_split, segment_seconds=cfg.val_seconds, seed=cfg.val_seed,
                            num_items=max(cfg.val_items, 1), **mix)
    if hasattr(train, "preload"):
        train.preload()  # decode once in the parent; forked DataLoader workers share it
        if val_split == "train":
            val_mixer.share_decoded(train)  # the same files: decoding them again took about 20 s on 2 cores
    return train, make_validation_set(val_mixer, cfg.val_items), str(pools)


def _train(args: argparse.Namespace) -> int:
    from linseq.experiments.speech_enhancement.training import TrainConfig, train_speech

    cfg = TrainConfig.from_preset(
        args.preset, model=args.model, shrink=args.shrink, sequence=args.sequence, out=str(args.out),
        steps=args.steps, max_minutes=args.minutes, batch_size=args.batch_size, num_workers=args.workers,
        val_every=args.val_every, val_every_seconds=args.val_every_seconds, val_items=args.val_items,
        val_seed=args.val_seed, amp=args.amp, drop_band=args.drop_band, device=args.device, seed=args.seed,
        resume=args.resume, init_from=args.init_from, lr=args.lr, lr_schedule=args.lr_schedule, lr_min=args.lr_min,
        warmup_steps=args.warmup_steps, snr_range=tuple(args.snr_range) if args.snr_range else None,
        extra_noise=tuple(args.extra_noise) if args.extra_noise else None, sisdr_weight=args.sisdr_weight,
        stoi_weight=args.stoi_weight, clean_proportion=args.clean_proportion, speech_eq_db=args.speech_eq_db,
        speed_perturb=args.speed_perturb, ema_decay=args.ema_decay,
    )
    if args.minutes is not None and args.steps is None:
        cfg.steps = None  # a time budget alone
    if args.steps is not None and args.minutes is None:
        cfg.max_minutes = None  # a step budget alone
    cfg.check()  # bad settings fail before the pools are decoded
    t0 = time.perf_counter()
    train, val, data = _datasets(args, cfg)
    data_s = time.perf_counter() - t0
    result = train_speech(cfg, train, val, progress=not args.no_progress)
    t = result["timing"]
    best = result["best"] or {}
    parts = [f"{k} {best[k]:.3f}" for k in ("WB_PESQ", "STOI", "SI_SDR") if k in best]
    print(f"trained {result['steps']} steps in {result['elapsed_s'] / 60:.1f} min on {data} "
          f"({result['steps_per_second']:.2f} steps/s, amp {result['config']['amp_resolved']})")
    print(f"best validation (step {best.get('step')}): score {best.get('score', float('nan')):.4f}; " + ", ".join(parts))
    print(f"checkpoint: {args.out / 'best'}; resume state: {args.out / 'last'}; metrics: {args.out / 'metrics.json'}; "
          f"plot: {args.out / 'loss.png'}")
    print(f"outside the training budget: data {data_s:.1f} s, model and AMP probe {t['before_loop_s']:.1f} s, "
          f"after the loop {t['after_loop_s']:.1f} s (the first step, inside it, took {t.get('first_step_s', 0):.1f} s)")
    print(f"next: linseq speech eval --checkpoint {args.out} --test-set {DEFAULT_POOLS / 'test_set'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from linseq.experiments.speech_enhancement.evaluate import evaluate_system, markdown_table

    system = args.checkpoint
    if system not in ("noisy", "baseline") and not Path(system).exists():
        raise FileNotFoundError(f"no checkpoint at {system} (give a folder, 'noisy' or 'baseline')")
    result = evaluate_system(system, args.test_set, args.out, device=args.device, workers=args.workers,
                             progress=not args.no_progress, limit=args.limit, tag=args.name)
    print(markdown_table([result]))
    if result["missing_metrics"]:
        print(f"note: skipped {', '.join(result['missing_metrics'])} (pip install 'linseq[speech]')")
    for path in result.get("written", []):
        print(f"wrote {path}")
    return 0


def _average(args: argparse.Namespace) -> int:
    import torch

    from linseq.experiments.speech_enhancement.checkpoint import average_speech_checkpoints

    out = average_speech_checkpoints(args.checkpoints, args.out, dtype=getattr(torch, args.dtype))
    print(f"wrote {out}: the mean of {len(args.checkpoints)} checkpoints")
    print(f"next: linseq speech eval --checkpoint {out} --test-set {DEFAULT_POOLS / 'test_set'}")
    return 0


def _rtf(args: argparse.Namespace) -> int:
    import torch

    from linseq.experiments.speech_enhancement.evaluate import complexity_markdown, complexity_table

    gpu = torch.cuda.is_available() and not args.no_gpu
    result = complexity_table(args.out, args.seconds, args.stream_seconds, args.repeats, gpu=gpu,
                              cpu=not args.no_cpu, progress=not args.no_progress)
    print(complexity_markdown(result))
    print(f"CPU: {result['cpu']}; RTF = processing time / audio time (lower is faster; < 1 is real time)")
    if args.out is not None:
        print(f"wrote {args.out / 'complexity.json'} and {args.out / 'complexity.md'}")
    return 0
