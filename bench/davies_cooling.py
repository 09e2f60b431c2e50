"""Davies cooling backend on a 4-qubit TFIM (+ nudge 0.2·Z3): trace distance of the steady state to the
exact Gibbs state and ground-state infidelity against T, for qutip.steadystate and for mesolve to convergence.

    python bench/davies_cooling.py
"""

import numpy as np

from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.cooling import trace_distance
from qep_analog.equilibrium.exact import gibbs_state
from qep_analog.models.pauli import PauliSum
from qep_analog.models.spin_models import transverse_field_ising

h = transverse_field_ising(4, input_qubits=[0], output_qubits=[3])
th = np.random.default_rng(0).normal(size=len(h.parameter_names))
x = [0.5]
nudge = PauliSum.from_spec("Z3").scaled(0.2)
E, V = np.linalg.eigh(h.matrix(th, x, nudge.matrix(4)).toarray())
print("gap", E[1] - E[0])
for T in (1.0, 0.3, 0.1, 0.03, 0.01):
    for m in ("steadystate", "mesolve"):
        s = get_backend("cooling", temperature=T, method=m).prepare(h, th, x, nudge=nudge)
        g, _ = gibbs_state(h.matrix(th, x, nudge.matrix(4)).toarray(), T)
        tr = s.info["trajectory"]
        extra = (
            ""
            if tr is None
            else (
                f" stopped at t={tr.times[-1]:.1f} (of 1000), min eig {tr.min_eigenvalue.min():.1e}, "
                f"max|tr-1| {np.abs(tr.trace - 1).max():.1e}"
            )
        )
        print(
            f"T={T:5.2f} {m:11s} trace distance to Gibbs {trace_distance(s.state, g):.2e}  "
            f"ground infidelity {1 - np.real(V[:, 0] @ s.state @ V[:, 0]):.2e}{extra}"
        )
