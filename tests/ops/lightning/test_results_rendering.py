"""The README's Lightning tables are rendered from the committed GPU results, and agree with the README."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_readme_block_is_the_rendering_of_the_committed_results(load_script):
    mod = load_script("benchmarks/render_lightning_table.py")
    text = mod.render()
    readme = (ROOT / "README.md").read_text()
    block = readme.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0].strip()
    assert block == text.strip(), "README's Lightning block is stale: run python docs/build_readme.py"
    assert "| 4K | 16 | 1 |" in text and "| 16K | 4 | 2 |" in text  # the shipped split at 16K: 2 segments


def test_shipped_rows_skip_variants_with_settings_the_code_does_not_use(load_script):
    mod = load_script("benchmarks/render_lightning_table.py")
    rows = [{"section": "head", "variant": v, "provider": "linseq-triton", "T": 4096, "B": 16, "mode": "fwd",
             "ms": ms, "peak_gib": 1.0} for v, ms in (("other", 9.0), ("shipped", 1.0))]
    data = {"rows": rows, "variants": {"other": {"PROGRAMS_PER_SM": 2, "FWD_TMA": True},
                                       "shipped": {"PROGRAMS_PER_SM": 2, "FWD_TMA": False}}}
    assert mod.shipped_rows(data, "run")[(4096, "fwd")]["ms"] == 1.0


def test_peers_table_gives_each_peer_and_linseqs_speed_up_in_the_same_run(load_script):
    mod = load_script("benchmarks/render_lightning_table.py")

    def row(section, provider, mode, ms, variant="-"):
        return {"section": section, "variant": variant, "provider": provider, "T": 4096, "B": 16, "mode": mode,
                "ms": ms, "peak_gib": 1.0}

    rows = [row("head", "linseq-triton", "fwd", 0.5, "shipped"), row("head", "linseq-triton", "fwdbwd", 2.0, "shipped"),
            row("peers", "lightning-attn", "fwd", 2.5), row("peers", "lightning-attn", "fwdbwd", 18.0),
            row("peers", "sdpa", "fwd", 2.0), row("peers", "sdpa", "fwdbwd", None)]
    data = {"rows": rows, "variants": {"shipped": {"PROGRAMS_PER_SM": 1}}}
    table = mod.peers_table(data, "run")
    assert "| 4K | 16 | 2.50 / 18.00 | 5.0× / 9.0× | 2.00 / — | 4.0× / — |" in table, table
    assert "lightning-attn 0.0.5" in table.splitlines()[0]
