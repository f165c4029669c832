"""The ``linseq`` command. Each subcommand is one module in this package that defines

``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Modules are discovered automatically, so adding a subcommand means adding one file.
"""
