"""`linseq flora`: the demo writes an adapter that the inspector reads back; a missing folder is a clear error."""

from __future__ import annotations

from linseq.cli.main import main


def test_demo_then_inspect(tmp_path, capsys):
    assert main(["flora", "--out", str(tmp_path), "--rank", "3"]) == 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    capsys.readouterr()
    assert main(["flora", "--adapter", str(tmp_path / "adapter")]) == 0
    out = capsys.readouterr().out
    assert "ranks [3, 3, 3, 3]" in out and "saved in full" in out


def test_missing_adapter_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["flora", "--adapter", str(tmp_path / "missing")]) == 2
    assert "adapter_config.json" in capsys.readouterr().err
