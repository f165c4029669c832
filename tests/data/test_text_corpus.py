"""Byte-level corpora: deterministic split, empty corpus errors, window sampling, tokenizer round trip."""

import pytest
import torch

from linseq.data import ByteTokenizer, evenly_spaced_windows, load_text_corpus, sample_windows


def _write_tree(root, n=30):
    for i in range(n):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n" + "word " * int(torch.randint(20, 60, ())))
    (root / "binary.bin").write_bytes(b"\x00\x01\x02" * 100)


def test_split_is_deterministic_and_disjoint_by_file(tmp_path):
    _write_tree(tmp_path)
    a = load_text_corpus(tmp_path, val_fraction=0.2)
    b = load_text_corpus(tmp_path, val_fraction=0.2)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert a.num_files == 30  # the binary file is skipped
    assert 0 < a.num_val_files < 30
    assert b"\x00" not in bytes(a.train.tolist())


def test_single_file_is_split_by_its_tail(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("abcdefghij" * 100)
    c = load_text_corpus(f, val_fraction=0.1)
    assert c.train.numel() == 900 and c.val.numel() == 100


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(ValueError, match="empty corpus"):
        load_text_corpus(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_corpus(tmp_path / "missing")


def test_default_corpus_is_the_standard_library():
    c = load_text_corpus(max_bytes=200_000)
    assert "standard library" in c.source
    assert c.train.numel() + c.val.numel() >= 200_000 - 1
    assert b"import" in bytes(c.train[:200_000].tolist())


def test_windows_are_slices_of_the_corpus():
    tokens = torch.randint(0, 256, (1000,), dtype=torch.uint8)
    w = sample_windows(tokens, 4, 17, torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))))
    assert w.shape == (4, 17) and w.dtype == torch.int64
    hay = tokens.long()
    for row in w:
        assert any(torch.equal(hay[s : s + 17], row) for s in range(1000 - 16))
    e = evenly_spaced_windows(tokens, 3, 10)
    assert torch.equal(e[0], hay[:10]) and torch.equal(e[-1], hay[-10:])


def test_byte_tokenizer_round_trips_unicode():
    tok = ByteTokenizer()
    text = "naïve — λx. ∑ 😀"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text
    dec = tok.stream_decoder()
    assert "".join(dec.decode(bytes([i])) for i in ids) == text
