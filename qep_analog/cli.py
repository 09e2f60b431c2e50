"""The ``qep-analog`` command line.

Each subcommand lives next to the layer it drives and registers itself through a
``register(subparsers)`` function listed in ``SUBCOMMAND_MODULES``. Errors of the
:class:`~qep_analog.errors.QepError` family, and RecursionError, UnicodeDecodeError, OSError and
MemoryError from any command, print as one line and exit with code 2 (see :func:`main`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from qep_analog import __version__
from qep_analog.errors import QepError, QepValueError

# Modules providing ``register(subparsers)``; one line per subcommand family.
SUBCOMMAND_MODULES: list[str] = [
    "qep_analog.device.cli",
    "qep_analog.gradient_cli",
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


MAX_THREADS = 1024


def _threads() -> int:
    """``QEP_ANALOG_THREADS`` (default 1) as an integer in [1, MAX_THREADS]."""
    text = os.environ.get("QEP_ANALOG_THREADS", "1")
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_THREADS:
        raise QepValueError(f"environment variable QEP_ANALOG_THREADS must be an integer in [1, {MAX_THREADS}], "
                            f"not {text[:40]!r}")
    return value


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    """One line for an error that is not ours: what failed, on which file, without a traceback."""
    if isinstance(exc, RecursionError):
        return "input nested too deeply (recursion limit reached while reading it)"
    if isinstance(exc, MemoryError):
        return "out of memory: an input asks for more than this machine has (see the documented upper bounds)"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.encoding} cannot decode byte {exc.start}: {exc.reason})"
    if isinstance(exc, OSError):
        where = f" '{exc.filename}'" if exc.filename else ""
        return f"cannot access{where}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks and atomic writers clean up."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Every error becomes one line on stderr and exit code 2: the package's own
    :class:`~qep_analog.errors.QepError`, and RecursionError, UnicodeDecodeError, OSError and MemoryError
    from any command. SIGINT exits 130 and SIGTERM 143, after temporary files are removed."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (one line, code 2): returned, not raised
        return exc.code if isinstance(exc.code, int) else 2
    # One BLAS/OpenMP thread: small dense/sparse kernels gain nothing from more, and pinning makes
    # results bitwise reproducible. QEP_ANALOG_THREADS overrides.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=_threads()):
            return int(args.func(args) or 0)
    except QepError as exc:
        print(f"qep-analog: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except (RecursionError, UnicodeDecodeError, OSError, MemoryError) as exc:
        print(f"qep-analog: error: {_one_line(_describe(exc))}", file=sys.stderr)
        return 2
    except _Terminated:
        print("qep-analog: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("qep-analog: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
