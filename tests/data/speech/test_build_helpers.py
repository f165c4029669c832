"""The builder's pure parts (no apt, ffmpeg or espeak-ng needed)."""

import struct

import numpy as np
import pytest

from linseq.data.speech import build as b
from linseq.data.speech.sources import BuildError, ensure_packages, ensure_tools, opensfx_entries


def test_split_constants_are_disjoint():
    assert not set(b.NOISE_FAMILIES["train"]) & set(b.NOISE_FAMILIES["test"])
    assert not set(b.ESPEAK_VARIANTS["train"]) & set(b.ESPEAK_VARIANTS["test"])
    assert not {b._lang(x) for x in b.ESPEAK_LANGUAGES["train"]} & set(b.TEST_LANGUAGES)
    assert "hum" in b.NOISE_FAMILIES["test"] and "music" in b.NOISE_FAMILIES["test"]
    assert b._split_of("it") == "test" and b._split_of("pt_BR") == "train" and b._split_of("sr@latin") == "train"
    assert b._lang("en-gb-scotland") == "en" and b._lang("nl") == "nl"
    assert b.ASTERISK_VOICES["it"].startswith("it_") and b._split_of("it") == "test"


def test_pseudo_utterances_join_words_with_short_pauses():
    rng = np.random.default_rng()
    words = [np.sin(np.arange(int(rng.uniform(0.3, 0.9) * 16_000)) * 0.1).astype(np.float32) for _ in range(40)]
    utts = b._pseudo_utterances(words, rng)
    assert utts
    for x, n in utts:
        assert 1.0 * 16_000 <= len(x) <= (4.0 + 0.9 + 0.3) * 16_000
        assert n >= 2 and abs(np.max(np.abs(x)) - 0.9) < 1e-5


def test_clean_piece_drops_clipped_and_short_and_trims():
    st = b._Stats()
    t = np.arange(16_000) / 16_000
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    padded = np.concatenate([np.zeros(8000), tone, np.zeros(8000)]).astype(np.float32)
    out = b._clean_piece(padded, st)
    assert out is not None and 16_000 <= len(out) < 16_000 + 2 * 0.08 * 16_000
    assert b._clean_piece(np.clip(4 * tone, -1, 1).astype(np.float32), st) is None
    assert b._clean_piece(tone[:1000].astype(np.float32), st) is None
    assert st == {"dropped_clipped": 1, "dropped_too_short": 1}


def test_opensfx_catalogue_parser(tmp_path):
    wav = b"RIFF" + b"\0" * 2000
    names = [b'"A". By X.\0', b'"B". By Y.\0']
    table_len = 8 * len(names)
    body, entries = b"", []
    for n in names:
        entry = bytes([len(n)]) + n + wav
        entries.append((table_len + len(body), len(entry)))
        body += entry
    table = b"".join(struct.pack("<II", off | 0x80000000, size) for off, size in entries)
    (tmp_path / "x.cat").write_bytes(table + body)
    got = opensfx_entries(tmp_path / "x.cat")
    assert [g[0] for g in got] == ['"A". By X.', '"B". By Y.'] and all(g[1] == wav for g in got)


def test_missing_tools_and_packages_are_named(tmp_path):
    with pytest.raises(BuildError, match="no-such-tool-xyz"):
        ensure_tools(False, ["no-such-tool-xyz"])
    with pytest.raises(BuildError, match="no-such-package-xyz"):
        ensure_packages(tmp_path, False, ["no-such-package-xyz"])


def test_build_refuses_a_non_pools_folder_and_is_a_no_op_on_a_complete_one(tmp_path, tiny_pools, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        b.build_pools(tmp_path / "junk", install=False, progress=False)
    before = {p: p.stat().st_mtime_ns for p in tiny_pools.rglob("*")}
    assert b.build_pools(tiny_pools, install=False) == tiny_pools
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in tiny_pools.rglob("*")} == before
    assert b.main([str(tmp_path / "junk"), "--no-install", "--quiet"]) == 1
