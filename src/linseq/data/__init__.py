"""Data for linseq: embedded corpora, tokenizers, synthetic generators.

``linseq.data.text``: byte-level text corpora (the Python standard library's sources by default).
"""

from linseq.data.text import (
    VOCAB_SIZE,
    ByteTokenizer,
    TextCorpus,
    evenly_spaced_windows,
    load_text_corpus,
    sample_windows,
    stdlib_source_files,
)

__all__ = [
    "VOCAB_SIZE",
    "ByteTokenizer",
    "TextCorpus",
    "evenly_spaced_windows",
    "load_text_corpus",
    "sample_windows",
    "stdlib_source_files",
]
