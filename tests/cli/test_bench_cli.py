"""`linseq bench` end to end on the CPU at tiny sizes: table, JSON with metadata, plot, clear errors."""

import json

from linseq.cli.main import main


def test_bench_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--lengths", "64", "128", "--tokens", "128", "--heads", "2",
                 "--head-dim", "16", "--providers", "linseq-chunk", "linseq-naive", "sdpa"]) == 0
    data = json.loads((out / "lightning_bench.json").read_text())
    assert {"device", "commit", "torch", "date"} <= set(data["meta"])
    rows = data["configs"][0]["results"]
    assert {(r["provider"], r["T"], r["mode"]) for r in rows if r["ms"] is not None} == {
        (p, T, m) for p in ("linseq-chunk", "linseq-naive", "sdpa") for T in (64, 128) for m in ("fwd", "fwdbwd")}
    assert (out / "lightning_cpu.png").stat().st_size > 10_000
    assert "linseq-chunk fwd" in capsys.readouterr().out


def test_unavailable_peer_is_reported_not_fatal(tmp_path):
    out = tmp_path / "b"
    assert main(["bench", "--out", str(out), "--lengths", "64", "--tokens", "64", "--heads", "1", "--head-dim", "16",
                 "--providers", "fla", "linseq-chunk"]) == 0
    rows = json.loads((out / "lightning_bench.json").read_text())["configs"][0]["results"]
    fla = [r for r in rows if r["provider"] == "fla"]
    assert fla and fla[0]["ms"] is None and fla[0]["error"]


def test_bad_lengths_give_one_line_error(capsys):
    assert main(["bench", "--lengths", "128", "0"]) == 2
    assert "--lengths must be positive" in capsys.readouterr().err
