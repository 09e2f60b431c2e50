"""Partition Pauli products into qubit-wise commuting measurement settings.

Two products can share a shot when, on every qubit they both touch, they ask for the same
basis (n counts as Z). Finding the fewest settings is graph colouring of the conflict graph;
we run DSatur from several seeded random tie-breaks and keep the best colouring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qep_analog.models.pauli import PauliProduct


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One measurement setting: a basis letter per qubit and the products it estimates."""

    basis: str
    members: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.basis} ({len(self.members)} products)"


def qubitwise_compatible(a: PauliProduct, b: PauliProduct) -> bool:
    ba, bb = a.basis, b.basis
    return all(bb.get(q, letter) == letter for q, letter in ba.items())


def group_qubitwise(products: Sequence[PauliProduct], n_qubits: int, *, restarts: int = 64,
                    seed: int = 0) -> tuple[Setting, ...]:
    """Fewest qubit-wise commuting settings found by DSatur with random tie-breaks.

    Qubits that no member touches are read in Z. The result is deterministic for a given
    ``seed``. Every returned setting is checked to be qubit-wise commuting.
    """
    products = list(products)
    m = len(products)
    if m == 0:
        return ()
    if all(letter == "Z" for p in products for letter in p.basis.values()):
        # all Z-diagonal (e.g. every Rydberg ∂H/∂θ): one setting, no colouring needed (O(m), not O(m²))
        return (Setting(basis="Z" * n_qubits, members=tuple(range(m))),)
    conflict = np.zeros((m, m), dtype=bool)
    for i in range(m):
        for j in range(i + 1, m):
            if not qubitwise_compatible(products[i], products[j]):
                conflict[i, j] = conflict[j, i] = True
    rng = np.random.default_rng(seed)
    best: list[int] | None = None
    for attempt in range(max(1, restarts)):
        noise = rng.random(m) if attempt else np.zeros(m)
        colours = _dsatur(conflict, noise)
        if best is None or max(colours) < max(best):
            best = colours
    settings = []
    for colour in range(max(best) + 1):
        members = tuple(i for i in range(m) if best[i] == colour)
        letters = ["Z"] * n_qubits
        for i in members:
            for q, letter in products[i].basis.items():
                letters[q] = letter
        settings.append(Setting(basis="".join(letters), members=members))
    settings.sort(key=lambda s: (s.basis != "Z" * n_qubits, s.basis))
    return tuple(settings)


def _dsatur(conflict: np.ndarray, noise: np.ndarray) -> list[int]:
    m = conflict.shape[0]
    degree = conflict.sum(axis=1)
    colours = [-1] * m
    neighbour_colours: list[set[int]] = [set() for _ in range(m)]
    for _ in range(m):
        uncoloured = [i for i in range(m) if colours[i] < 0]
        i = max(uncoloured, key=lambda k: (len(neighbour_colours[k]), degree[k], noise[k]))
        c = 0
        while c in neighbour_colours[i]:
            c += 1
        colours[i] = c
        for j in np.flatnonzero(conflict[i]):
            neighbour_colours[j].add(c)
    return colours
