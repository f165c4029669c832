"""Entry point of the ``linseq`` console script: discovers subcommand modules and dispatches."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import linseq.cli as _cli_pkg

_NOT_SUBCOMMANDS = {"main", "common"}


def _subcommand_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(_cli_pkg.__path__), key=lambda m: m.name):
        if info.name in _NOT_SUBCOMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"linseq.cli.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    from linseq import __version__

    parser = argparse.ArgumentParser(
        prog="linseq",
        description="linseq: linear-time sequence modeling. Run `linseq <command> --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"linseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for module in _subcommand_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        try:
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        except ModuleNotFoundError as err:  # an optional dependency of this one command: the others still work
            p.description = f"{p.description}\n\nUnavailable here: needs the package {err.name!r}."
            p.set_defaults(_run=_missing_dependency(module.NAME, err.name))
    return parser


def _missing_dependency(command: str, package: str | None):
    """The ``_run`` of a subcommand whose arguments could not be built because ``package`` is not installed."""
    extra = {"transformers": "hf", "peft": "hf", "accelerate": "hf", "pesq": "speech", "pystoi": "speech"}.get(
        (package or "").split(".")[0])
    hint = f" (pip install 'linseq[{extra}]')" if extra else ""

    def run(_args: argparse.Namespace) -> int:
        print(f"linseq {command}: error: needs the package {package!r}, which is not installed{hint}",
              file=sys.stderr)
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        # User-facing errors: one clear line, no traceback.
        print(f"linseq {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"linseq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
