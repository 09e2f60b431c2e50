"""The ``qep-analog`` command line.

Each subcommand lives next to the layer it drives and registers itself through a
``register(subparsers)`` function listed in ``SUBCOMMAND_MODULES``. Errors of the
:class:`~qep_analog.errors.QepError` family print as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from qep_analog import __version__
from qep_analog.errors import QepError

# Modules providing ``register(subparsers)``; one line per subcommand family.
SUBCOMMAND_MODULES: list[str] = [
    "qep_analog.device.cli",
    "qep_analog.learning.cli",
    "qep_analog.train_cli",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own code)
        self.exit(2, f"qep-analog: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qep-analog", description="Train analog quantum simulators with QEP.")
    parser.add_argument("--version", action="version", version=f"qep_analog {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # One BLAS/OpenMP thread: small dense/sparse kernels gain nothing from more, and pinning makes
    # results bitwise reproducible. QEP_ANALOG_THREADS overrides.
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=int(os.environ.get("QEP_ANALOG_THREADS", "1"))):
            return int(args.func(args) or 0)
    except QepError as exc:
        print(f"qep-analog: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("qep-analog: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
