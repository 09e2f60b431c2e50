"""Optimisers for the local update rule Δθ_k = −η ĝ_k (SGD) and Adam.

Each optimiser keeps its hyperparameters as given and its running state in attributes ending in
``_``; ``step(theta, grad)`` returns the new parameters. ``state_dict``/``load_state_dict``
make checkpoints exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qep_analog.errors import QepValueError


def _check_lr(lr: float) -> None:
    if not (np.isfinite(lr) and lr > 0):
        raise QepValueError(f"'learning_rate' must be a positive finite number, not {lr}")


@dataclass(kw_only=True)
class SGD:
    """θ ← θ − η g (the local QEP update rule; each θ_k needs only its own ĝ_k)."""

    learning_rate: float = 0.01
    step_count_: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        _check_lr(self.learning_rate)

    def step(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.step_count_ += 1
        return theta - self.learning_rate * grad

    def state_dict(self) -> dict:
        return {"step_count_": self.step_count_}

    def load_state_dict(self, state: dict) -> None:
        self.step_count_ = int(state["step_count_"])


@dataclass(kw_only=True)
class Adam:
    """Adam (Kingma & Ba 2015): per-parameter, so still a local rule in θ_k."""

    learning_rate: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    step_count_: int = field(default=0, init=False)
    m_: np.ndarray | None = field(default=None, init=False)
    v_: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _check_lr(self.learning_rate)
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise QepValueError(f"'{name}' must lie in [0, 1), not {getattr(self, name)}")

    def step(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.m_ is None:
            self.m_, self.v_ = np.zeros_like(theta), np.zeros_like(theta)
        self.step_count_ += 1
        self.m_ = self.beta1 * self.m_ + (1 - self.beta1) * grad
        self.v_ = self.beta2 * self.v_ + (1 - self.beta2) * grad**2
        m_hat = self.m_ / (1 - self.beta1**self.step_count_)
        v_hat = self.v_ / (1 - self.beta2**self.step_count_)
        return theta - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict:
        return {"step_count_": self.step_count_,
                "m_": None if self.m_ is None else self.m_.tolist(),
                "v_": None if self.v_ is None else self.v_.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.step_count_ = int(state["step_count_"])
        self.m_ = None if state["m_"] is None else np.asarray(state["m_"], dtype=float)
        self.v_ = None if state["v_"] is None else np.asarray(state["v_"], dtype=float)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, **options) -> SGD | Adam:
    if name not in OPTIMIZERS:
        raise QepValueError(f"'optimizer' must be one of {sorted(OPTIMIZERS)}, not {name!r}")
    try:
        return OPTIMIZERS[name](**options)
    except TypeError as exc:
        raise QepValueError(f"optimizer {name!r}: {exc}") from None
