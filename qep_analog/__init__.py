"""qep_analog: train analog quantum simulators with Quantum Equilibrium Propagation.

Layers, data flowing one way: ``models`` (Hamiltonians as named terms) → ``equilibrium``
(backends reaching an eigenstate or Gibbs state) → ``measurement`` (bases, bitstrings,
estimators) → ``learning`` (QEP gradient estimators, update rule, optimizers, trainer).
``device`` maps model parameters onto pulser registers, DMM maps and sequences.
"""

from qep_analog.errors import QepError, QepRuntimeError, QepValueError

__version__ = "0.1.0"

__all__ = ["QepError", "QepRuntimeError", "QepValueError", "__version__"]
