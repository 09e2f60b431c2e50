"""One small error hierarchy for the whole package.

Messages name the field at fault, the limit and the offending value, e.g.
"'shots' must be ≥ 1, not -3". The CLI prints them on one line and exits with code 2.
"""

from __future__ import annotations


class QepError(Exception):
    """Base class of every error raised on purpose by qep_analog."""


class QepValueError(QepError, ValueError):
    """Bad input: a value, a key, a file or a configuration that cannot be used."""


class QepRuntimeError(QepError, RuntimeError):
    """A computation that could not be carried out (non-convergence, unrealisable nudge, ...)."""


class ConvergenceError(QepRuntimeError):
    """An eigensolver or solver did not reach its stated tolerance."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`QepValueError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise QepValueError(message)
