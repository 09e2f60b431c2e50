"""The Rydberg-array model in pulser's convention, its chain rule and its device constraints.

    H = Σ_i (Ω/2)(cos φ X_i + sin φ Y_i) − Σ_i δ_i n_i + Σ_{i<j} J_ij n_i n_j,   J_ij = C6 / r_ij⁶

with g = |0⟩, r = |1⟩, n = (1 − Z)/2, Ω, δ in rad/µs, positions r_i in µm and C6 from the device
(PHYSICS.md §3; checked against pulser_simulation's own Hamiltonian in tests/device).

As a :class:`~qep_analog.models.hamiltonian.Hamiltonian` (names are the contract with the backend):

* ``drive_x_i`` / ``drive_y_i``: (Ω/2) cos φ X_i, (Ω/2) sin φ Y_i (fixed; input ``omega`` in global mode);
* ``delta_i``: −δ_i n_i, trainable parameter ``delta_i`` (or fixed when atom i's detuning is frozen);
* ``input_k``: −x_k n_k on input atoms, input parameter ``x_k`` (local mode), or ``delta_global``:
  −x Σ_i n_i (global mode); the device realises δ_k + x_k;
* ``J_i_j``: n_i n_j with trainable parameter ``J_i_j`` (fixed when positions are frozen);
* outputs ``n_l``: n_ℓ on the output atoms.

∂H/∂J_ij = n_i n_j and ∂H/∂δ_i = −n_i are Z-diagonal, so a QEP step needs Z-basis bitstrings only.
Positions enter through the chain rule ∂J_ij/∂r_i = −6 C6 (r_i − r_j)/|r_i − r_j|⁸.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pulser
from pulser.devices._device_datacls import BaseDevice

from qep_analog.device.devices import global_channel, load_device
from qep_analog.device.limits import MIN_ATOM_DISTANCE_UM
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian, Output, Term
from qep_analog.models.pauli import PauliProduct, PauliSum


def pair_couplings(positions_um: np.ndarray, c6: float) -> np.ndarray:
    """Matrix J_ij = C6 / r_ij⁶ (zero diagonal)."""
    diff = positions_um[:, None, :] - positions_um[None, :, :]
    r2 = np.sum(diff**2, axis=-1)
    np.fill_diagonal(r2, np.inf)
    return c6 / r2**3


def coupling_position_jacobian(positions_um: np.ndarray, c6: float) -> np.ndarray:
    """∂J_ij/∂r_i as an (N, N, dim) array: −6 C6 (r_i − r_j)/|r_i − r_j|⁸ (zero for i = j)."""
    diff = positions_um[:, None, :] - positions_um[None, :, :]
    r2 = np.sum(diff**2, axis=-1)
    np.fill_diagonal(r2, np.inf)
    return -6.0 * c6 * diff / r2[..., None] ** 4


@dataclass(frozen=True, kw_only=True)
class RydbergModel:
    """A Rydberg register on a pulser device, with a global drive and local (DMM) detunings.

    ``detunings`` are the trainable local detunings δ_i (rad/µs); inputs add to them (local mode)
    or set a global detuning offset (global mode). ``omega`` and ``phase`` are the global drive.
    """

    positions_um: np.ndarray
    device: BaseDevice
    omega: float
    detunings: np.ndarray
    phase: float = 0.0
    input_atoms: tuple[int, ...] = ()
    output_atoms: tuple[int, ...] = ()
    input_mode: Literal["local", "global"] = "local"
    train_positions: bool = True
    trainable_detunings: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", load_device(self.device))
        pos = np.array(self.positions_um, dtype=float)
        if pos.ndim != 2 or pos.shape[1] not in (2, 3) or pos.shape[0] < 1:
            raise QepValueError(f"'positions_um' must be an (N, 2) array, not shape {pos.shape}")
        if not np.all(np.isfinite(pos)):
            raise QepValueError("'positions_um' must be finite")
        pos.setflags(write=False)
        object.__setattr__(self, "positions_um", pos)
        n = pos.shape[0]
        det = np.array(self.detunings, dtype=float).reshape(-1)
        if det.shape != (n,) or not np.all(np.isfinite(det)):
            raise QepValueError(
                f"'detunings' must be {n} finite values (rad/µs), not {det.tolist()}"
            )
        det.setflags(write=False)
        object.__setattr__(self, "detunings", det)
        for field in ("omega", "phase"):
            value = float(getattr(self, field))
            if not np.isfinite(value):
                raise QepValueError(f"'{field}' must be finite, not {value}")
            object.__setattr__(self, field, value)
        if self.input_mode not in ("local", "global"):
            raise QepValueError(
                f"'input_mode' must be 'local' or 'global', not {self.input_mode!r}"
            )
        for field in ("input_atoms", "output_atoms"):
            atoms = tuple(int(a) for a in getattr(self, field))
            bad = [a for a in atoms if not 0 <= a < n]
            if bad or len(set(atoms)) != len(atoms):
                raise QepValueError(
                    f"'{field}' must be distinct atom indices in 0..{n - 1}, not {list(atoms)}"
                )
            object.__setattr__(self, field, atoms)
        trainable = (
            tuple(range(n)) if self.trainable_detunings is None else tuple(self.trainable_detunings)
        )
        object.__setattr__(self, "trainable_detunings", tuple(int(a) for a in trainable))

    # ------------------------------------------------------------------ geometry
    @property
    def n_atoms(self) -> int:
        return self.positions_um.shape[0]

    @property
    def c6(self) -> float:
        return float(self.device.interaction_coeff)

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        n = self.n_atoms
        return tuple((i, j) for i in range(n) for j in range(i + 1, n))

    def couplings(self) -> np.ndarray:
        """J_ij = C6/r_ij⁶ as an (N, N) matrix (rad/µs)."""
        return pair_couplings(self.positions_um, self.c6)

    def with_(self, **changes) -> RydbergModel:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ Hamiltonian
    def hamiltonian(self) -> Hamiltonian:
        """The model as named terms (see the module docstring for names and signs)."""
        n = self.n_atoms
        terms: list[Term] = []
        cos, sin = np.cos(self.phase), np.sin(self.phase)
        global_inputs = self.input_mode == "global" and bool(self.input_atoms)
        for i in range(n):
            for letter, c in (("X", cos), ("Y", sin)):
                if abs(c) < 1e-15:
                    continue
                op = PauliProduct.parse(f"{letter}{i}", n)
                if global_inputs:
                    terms.append(
                        Term(
                            name=f"drive_{letter.lower()}_{i}",
                            operator=op,
                            role="input",
                            coefficient=0.5 * c,
                            parameter="omega",
                        )
                    )
                else:
                    terms.append(
                        Term(
                            name=f"drive_{letter.lower()}_{i}",
                            operator=op,
                            coefficient=0.5 * c * self.omega,
                        )
                    )
        for i in range(n):
            op = PauliProduct.parse(f"n{i}", n)
            if i in self.trainable_detunings:
                terms.append(
                    Term(
                        name=f"delta_{i}",
                        operator=op,
                        role="trainable",
                        coefficient=-1.0,
                        parameter=f"delta_{i}",
                    )
                )
            elif self.detunings[i] != 0.0:
                terms.append(Term(name=f"delta_{i}", operator=op, coefficient=-self.detunings[i]))
            if global_inputs or i in self.input_atoms:
                terms.append(Term(name=f"input_{i}", operator=op, role="input", coefficient=-1.0,
                                  parameter="delta_global" if global_inputs else f"x_{i}"))
        coupling = self.couplings()
        for i, j in self.pairs:
            op = PauliProduct.parse(f"n{i} n{j}", n)
            if self.train_positions:
                terms.append(
                    Term(name=f"J_{i}_{j}", operator=op, role="trainable", parameter=f"J_{i}_{j}")
                )
            else:
                terms.append(Term(name=f"J_{i}_{j}", operator=op, coefficient=coupling[i, j]))
        outputs = tuple(
            Output(name=f"n_{ell}", observable=PauliSum(((1.0, PauliProduct.parse(f"n{ell}", n)),)))
            for ell in self.output_atoms
        )
        return Hamiltonian(
            n_qubits=n,
            terms=tuple(terms),
            outputs=outputs,
            description=f"Rydberg array on {self.device.name}, C6={self.c6:g} rad/µs·µm⁶",
        )

    def theta(self) -> np.ndarray:
        """Trainable values in ``hamiltonian().parameter_names`` order (J from the positions)."""
        coupling = self.couplings()
        values = []
        for name in self.hamiltonian().parameter_names:
            kind, *idx = name.split("_")
            values.append(
                coupling[int(idx[0]), int(idx[1])] if kind == "J" else self.detunings[int(idx[0])]
            )
        return np.array(values)

    def inputs(self, x) -> np.ndarray:
        """Input vector in ``hamiltonian().input_names`` order; ``x`` per input atom (local mode)
        or (omega, delta_global) (global mode)."""
        x = np.asarray(x, dtype=float).reshape(-1)
        names = self.hamiltonian().input_names
        if self.input_mode == "global" and self.input_atoms:
            if x.size != 2:
                raise QepValueError(
                    f"global-mode input must be (omega, delta_global), not {x.tolist()}"
                )
            lookup = {"omega": x[0], "delta_global": x[1]}
            return np.array([lookup[k] for k in names])
        if x.size != len(self.input_atoms):
            raise QepValueError(
                f"input must have one value per input atom {list(self.input_atoms)}, not {x.size}"
            )
        return x.copy()

    def controls(self, theta, x, coupling_rtol: float = 1e-6) -> dict:
        """Device controls realising H(θ, x): positions, Ω, φ and total local detunings δ_i.

        The couplings in θ must be those of the model's positions (positions train through
        :meth:`position_gradient`, not as free couplings); a mismatch raises naming the pair.
        """
        h = self.hamiltonian()
        theta = h.theta_vector(theta)
        xv = h.input_vector(x)
        det = self.detunings.copy()
        coupling = self.couplings()
        for name, value in zip(h.parameter_names, theta, strict=True):
            kind, *idx = name.split("_")
            if kind == "delta":
                det[int(idx[0])] = value
            else:
                i, j = int(idx[0]), int(idx[1])
                if abs(value - coupling[i, j]) > coupling_rtol * max(abs(coupling[i, j]), 1e-12):
                    raise QepValueError(
                        f"coupling J_{i}_{j} = {value:.6g} rad/µs is not C6/r⁶ = {coupling[i, j]:.6g} of the "
                        f"model's positions; update positions (RydbergModel.position_gradient) instead"
                    )
        omega = self.omega
        for name, value in zip(h.input_names, xv, strict=True):
            if name == "omega":
                omega = value
            elif name == "delta_global":
                det = det + value
            else:
                det[int(name.split("_")[1])] += value
        return {
            "positions_um": self.positions_um,
            "omega": omega,
            "phase": self.phase,
            "detunings": det,
        }

    # ------------------------------------------------------------------ chain rule
    def position_gradient(self, grad_couplings) -> np.ndarray:
        """∂L/∂r_i = Σ_j ∂L/∂J_ij · ∂J_ij/∂r_i from per-pair ∂L/∂J_ij (dict ``J_i_j`` or (N, N))."""
        n = self.n_atoms
        g = np.zeros((n, n))
        if isinstance(grad_couplings, dict):
            for name, value in grad_couplings.items():
                _, i, j = name.split("_")
                g[int(i), int(j)] = g[int(j), int(i)] = value
        else:
            g = np.asarray(grad_couplings, dtype=float)
            g = np.triu(g, 1) + np.triu(g, 1).T
        jac = coupling_position_jacobian(self.positions_um, self.c6)
        return np.einsum("ij,ijd->id", g, jac)

    def split_gradient(self, grad_theta) -> tuple[np.ndarray, np.ndarray]:
        """(∂L/∂positions (N, dim), ∂L/∂δ (N,)) from a gradient over ``parameter_names``."""
        h = self.hamiltonian()
        grad_theta = np.asarray(grad_theta, dtype=float)
        grad_j = {}
        grad_delta = np.zeros(self.n_atoms)
        for name, value in zip(h.parameter_names, grad_theta, strict=True):
            if name.startswith("J_"):
                grad_j[name] = value
            else:
                grad_delta[int(name.split("_")[1])] = value
        return self.position_gradient(grad_j), grad_delta

    # ------------------------------------------------------------------ constraints
    def limits(self) -> dict:
        _, ch = global_channel(self.device)
        return {
            # a device may allow any distance (pulser's MockDevice: 0); atoms closer than MIN_ATOM_DISTANCE_UM
            # would couple by C6/r⁶ > 10⁶ rad/µs (and coinciding ones by infinity), so that floor always holds
            "min_distance_um": max(float(self.device.min_atom_distance), MIN_ATOM_DISTANCE_UM),
            "max_radial_distance_um": self.device.max_radial_distance,
            "max_atoms": self.device.max_atom_num,
            "max_omega": ch.max_amp,
            "max_abs_delta": ch.max_abs_detuning,
        }

    def dmm_bottom(self) -> float | None:
        """The DMM's bottom detuning (rad/µs, ≤ 0), or None without a DMM or without a bound."""
        dmms = self.device.dmm_channels
        return None if not dmms else dmms[sorted(dmms)[0]].bottom_detuning

    def violations(self, positions_um=None, detunings=None, omega=None) -> list[str]:
        """Every device constraint broken by these controls, as messages naming atoms and limits."""
        pos = self.positions_um if positions_um is None else np.asarray(positions_um, float)
        det = self.detunings if detunings is None else np.asarray(detunings, float)
        omega = self.omega if omega is None else omega
        lim, name, out = self.limits(), self.device.name, []
        if lim["max_atoms"] is not None and len(pos) > lim["max_atoms"]:
            out.append(f"{len(pos)} atoms exceed 'max_atom_num' = {lim['max_atoms']} of {name}")
        if pos.shape[1] > self.device.dimensions:
            out.append(f"{pos.shape[1]}D positions on a {self.device.dimensions}D device {name}")
        dmin = lim["min_distance_um"]
        dist = np.sqrt(np.sum((pos[:, None] - pos[None]) ** 2, axis=-1))
        for i, j in self.pairs:
            if dist[i, j] < dmin * (1 - 1e-9):
                out.append(
                    f"atoms q{i}, q{j} are {dist[i, j]:.4g} µm apart, below 'min_atom_distance' = "
                    f"{dmin:g} µm of {name}"
                )
        rmax = lim["max_radial_distance_um"]
        if rmax is not None:
            for i, r in enumerate(np.linalg.norm(pos, axis=1)):
                if r > rmax * (1 + 1e-9):
                    out.append(
                        f"atom q{i} is {r:.4g} µm from the centre, beyond 'max_radial_distance' = "
                        f"{rmax:g} µm of {name}"
                    )
        if lim["max_omega"] is not None and abs(omega) > lim["max_omega"]:
            out.append(
                f"'omega' = {omega:.4g} rad/µs exceeds the global channel's max_amp = "
                f"{lim['max_omega']:.4g} rad/µs of {name}"
            )
        if lim["max_abs_delta"] is not None:
            for i, d in enumerate(det):
                if abs(d) > lim["max_abs_delta"]:
                    out.append(
                        f"detuning of q{i} = {d:.4g} rad/µs exceeds max_abs_detuning = "
                        f"{lim['max_abs_delta']:.4g} rad/µs of {name}"
                    )
        bottom = self.dmm_bottom()
        if bottom is not None and det.max() - det.min() > -bottom * (1 + 1e-9):
            out.append(
                f"local detunings span {det.max() - det.min():.4g} rad/µs, more than the DMM bottom_detuning "
                f"|{bottom:.4g}| rad/µs of {name} (atoms q{int(det.argmin())}, q{int(det.argmax())})"
            )
        return out

    def validate(self) -> RydbergModel:
        """Raise one :class:`QepValueError` listing every violated device limit; return self."""
        problems = self.violations()
        if problems:
            raise QepValueError("; ".join(problems))
        return self

    def project(self, positions_um=None, detunings=None, max_iter: int = 200) -> RydbergModel:
        """Nearest admissible model: detunings clipped to the channel limit, atoms pulled inside
        the radial limit and pushed apart to the minimum distance (symmetric moves)."""
        lim = self.limits()
        pos = np.array(self.positions_um if positions_um is None else positions_um, dtype=float)
        det = np.array(self.detunings if detunings is None else detunings, dtype=float)
        if lim["max_abs_delta"] is not None:
            det = np.clip(det, -lim["max_abs_delta"], lim["max_abs_delta"])
        bottom = self.dmm_bottom()
        if bottom is not None and det.max() - det.min() > -bottom:
            # the DMM reaches at most |bottom_detuning| below the global detuning
            det = np.maximum(det, det.max() + bottom)
        dmin, rmax = lim["min_distance_um"] * (1 + 1e-6), lim["max_radial_distance_um"]
        for _ in range(max_iter):
            moved = False
            if rmax is not None:
                r = np.linalg.norm(pos, axis=1)
                far = r > rmax
                if np.any(far):
                    pos[far] *= (rmax / r[far])[:, None]
                    moved = True
            for i, j in self.pairs:
                d = pos[i] - pos[j]
                dist = np.linalg.norm(d)
                if dist < dmin:
                    u = d / dist if dist > 0 else np.eye(pos.shape[1])[0]
                    shift = 0.5 * (dmin - dist) * u
                    pos[i] += shift
                    pos[j] -= shift
                    moved = True
            if not moved:
                break
        model = self.with_(positions_um=pos, detunings=det)
        problems = model.violations()
        if problems:
            raise QepValueError(
                "projection onto the device constraints failed: " + "; ".join(problems)
            )
        return model

    # ------------------------------------------------------------------ pulser objects
    @property
    def qubit_ids(self) -> tuple[str, ...]:
        return tuple(f"q{i}" for i in range(self.n_atoms))

    def register(self, layout: bool = False) -> pulser.Register:
        """A pulser Register (ids q0, q1, …); ``layout=True`` adds an automatic trap layout."""
        reg = pulser.Register(dict(zip(self.qubit_ids, self.positions_um, strict=True)))
        if layout:
            reg = self.register_with_layout()[0]
        return reg

    def register_with_layout(self) -> tuple[pulser.Register, float]:
        """(register on an automatic trap layout, seconds it took) — ~0.5 s on WeightedAnalogDevice."""
        reg = pulser.Register(dict(zip(self.qubit_ids, self.positions_um, strict=True)))
        start = time.perf_counter()
        try:
            reg = reg.with_automatic_layout(self.device)
        except (ValueError, NotImplementedError) as exc:
            raise QepValueError(
                f"no trap layout for this register on {self.device.name}: {exc}"
            ) from None
        return reg, time.perf_counter() - start
