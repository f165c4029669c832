"""`import linseq` alone makes the Auto classes know linseq's LM, without importing transformers eagerly."""

import subprocess
import sys

import pytest

pytest.importorskip("transformers")

CHECK = """
import sys, tempfile
import linseq
assert "transformers" not in sys.modules, "import linseq must not import transformers"
from transformers import AutoConfig, AutoModelForCausalLM
from linseq.models.lm import LinseqLMConfig
cfg = AutoConfig.for_model(LinseqLMConfig.model_type, vocab_size=256, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
model = AutoModelForCausalLM.from_config(cfg)
with tempfile.TemporaryDirectory() as d:
    model.save_pretrained(d)
    again = AutoModelForCausalLM.from_pretrained(d)
print(type(again).__name__)
"""


@pytest.mark.parametrize("transformers_first", [False, True])
def test_import_linseq_registers_the_lm_with_auto_classes(transformers_first):
    code = CHECK if not transformers_first else "import transformers\n" + CHECK.replace(
        'assert "transformers" not in sys.modules, "import linseq must not import transformers"', "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ForCausalLM" in out.stdout
