"""CLI subcommands: one module each, discovered by :mod:`qpbench.cli`.

A command module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``ORDER`` (position in
``--help``), ``add_arguments(parser)`` and ``main(args) -> int`` (the exit code). Heavy imports go
inside ``main`` so that ``qpbench --help`` stays fast.
"""
