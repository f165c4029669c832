"""`linseq flora`: the demo writes an adapter that the inspector reads back; a missing folder is a clear error.

Calls the subcommand module directly (not linseq.cli.main) so the test does not import every other subcommand.
"""

from __future__ import annotations

import argparse

import pytest

from linseq.cli import flora


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    flora.add_arguments(parser)
    return flora.run(parser.parse_args(argv))


def test_demo_then_inspect(tmp_path, capsys):
    assert _run(["--out", str(tmp_path), "--rank", "3"]) == 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    capsys.readouterr()
    assert _run(["--adapter", str(tmp_path / "adapter")]) == 0
    out = capsys.readouterr().out
    assert "ranks [3, 3, 3, 3]" in out and "saved in full" in out


def test_missing_adapter_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        _run(["--adapter", str(tmp_path / "missing")])
