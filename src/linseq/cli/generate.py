"""``linseq generate``: stream text sampled from a trained linseq LM checkpoint."""

from __future__ import annotations

import argparse
import sys

NAME = "generate"
HELP = "stream text sampled from a trained linseq language model"
DESCRIPTION = (
    "Load a checkpoint written by `linseq train` (or any save_pretrained folder of a linseq LM) and stream sampled\n"
    "bytes after the prompt. Lightning layers decode with a constant-size state, so memory does not grow."
)
EPILOG = """example:
  linseq generate --checkpoint runs/lm --prompt 'def fibonacci(n):' --max-tokens 300 --temperature 0.7 --top-k 40
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run folder or checkpoint folder")
    parser.add_argument("--prompt", default="def ", help="text to continue (default 'def ')")
    parser.add_argument("--max-tokens", type=int, default=200, help="bytes to generate (default 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely bytes")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold in (0, 1]")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: not reproducible)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")


def run(args: argparse.Namespace) -> int:
    import torch

    from linseq.data.text import ByteTokenizer
    from linseq.models.lm.checkpoint import load_model
    from linseq.models.lm.sampling import stream_generate

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model = load_model(args.checkpoint, device=device)
    tokenizer = ByteTokenizer()
    prompt = tokenizer.encode(args.prompt)
    tokens = stream_generate(
        model, prompt, max_new_tokens=args.max_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )
    decoder = tokenizer.stream_decoder()
    first = next(tokens, None)  # raises the prompt-length error before anything is printed
    sys.stdout.write(args.prompt)
    if first is not None:
        sys.stdout.write(decoder.decode(bytes([first])))
    for token in tokens:
        sys.stdout.write(decoder.decode(bytes([token])))
        sys.stdout.flush()
    sys.stdout.write(decoder.decode(b"", final=True) + "\n")
    return 0
