"""The ``qpbench`` command: a thin dispatcher over :mod:`qpbench.commands`.

Exit codes: 0 success; 1 the command ran and found a problem (failed check, regression);
2 bad usage or input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import qpbench.commands

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it
# A path given that cannot be used (--out naming a file, a folder without write permission): bad
# input, said in one line with the path, not a traceback.
PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def command_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(qpbench.commands.__path__):
        module = importlib.import_module(f"qpbench.commands.{info.name}")
        if hasattr(module, "NAME"):
            modules.append(module)
    return sorted(modules, key=lambda mod: (getattr(mod, "ORDER", 100), mod.NAME))


def build_parser() -> argparse.ArgumentParser:
    from qpbench import __version__

    parser = argparse.ArgumentParser(
        prog="qpbench",
        description="Benchmark batched dense QP solvers: run suites, report, compare, check gradients.",
    )
    parser.add_argument("--version", action="version", version=f"qpbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=(module.__doc__ or module.HELP).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _plain_warnings(warnings.showwarning)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `qpbench ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ValueError, *PATH_ERRORS) as exc:
        print(f"qpbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _plain_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """qpbench's own warnings (a torn results file, ...) as one plain line on stderr; others as ``show`` does."""

    def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if category.__module__.startswith("qpbench"):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return show_warning


if __name__ == "__main__":
    sys.exit(main())
