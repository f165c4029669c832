"""The README's Lightning tables are rendered from the committed GPU results, and agree with the README."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _renderer():
    spec = importlib.util.spec_from_file_location("render_lightning_table",
                                                  ROOT / "benchmarks" / "render_lightning_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_block_is_the_rendering_of_the_committed_results():
    mod = _renderer()
    text = mod.render()
    readme = (ROOT / "README.md").read_text()
    block = readme.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0].strip()
    assert block == text.strip(), "README's Lightning block is stale: run python docs/build_readme.py"
    assert "| 4K | 16 | 1 |" in text and "| 16K | 4 | 2 |" in text  # the shipped split at 16K: 2 segments


def test_shipped_rows_skip_variants_with_settings_the_code_does_not_use():
    mod = _renderer()
    rows = [{"section": "head", "variant": v, "provider": "linseq-triton", "T": 4096, "B": 16, "mode": "fwd",
             "ms": ms, "peak_gib": 1.0} for v, ms in (("other", 9.0), ("shipped", 1.0))]
    data = {"rows": rows, "variants": {"other": {"PROGRAMS_PER_SM": 2, "FWD_TMA": True},
                                       "shipped": {"PROGRAMS_PER_SM": 2, "FWD_TMA": False}}}
    assert mod.shipped_rows(data, "run")[(4096, "fwd")]["ms"] == 1.0
