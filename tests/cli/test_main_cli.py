"""The ``linseq`` entry point: a subcommand whose optional dependency is missing must not take the others down."""

import types

from linseq.cli import main as cli_main


def _needs_missing_package(parser):
    import linseq_package_that_is_not_installed  # noqa: F401


def test_missing_optional_dependency_disables_only_its_command(monkeypatch, capsys):
    broken = types.SimpleNamespace(NAME="broken", HELP="needs a package", add_arguments=_needs_missing_package,
                                   run=lambda args: 0)
    real = cli_main._subcommand_modules
    monkeypatch.setattr(cli_main, "_subcommand_modules", lambda: [broken] + real())
    assert cli_main.main(["broken"]) == 2
    err = capsys.readouterr().err
    assert "linseq broken: error: needs the package 'linseq_package_that_is_not_installed'" in err
    parser = cli_main.build_parser()
    assert parser.parse_args(["bench"]).command == "bench"
