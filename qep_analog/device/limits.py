"""Project-wide sanity bounds for the device layer, checked before anything is built or allocated.

They sit well outside what any real neutral-atom device accepts (pulser's AnalogDevice: 6 µs,
Ω ≤ 2π·2 rad/µs, |δ| ≤ 2π·20 rad/µs, radius 38 µm), so they never bind on a physical device; they
exist for MockDevice (which has no limits) and for untrusted bundles and counts, where a value of
1e300 must be refused by name instead of producing overflows, 100 MB files or endless loops.
Units as everywhere in the layer: ns, rad/µs, µm.
"""

from __future__ import annotations

import math

from qep_analog.errors import QepValueError

MAX_DURATION_NS = 20_000  # one sequence (ramp): 20 µs; an export costs ~0.12 s and ~180 kB per µs per sample
MAX_RATE_RAD_PER_US = 1_000.0  # |Ω|, |δ|, |input detuning|, β, start detuning (2π·159 MHz)
MAX_POSITION_UM = 1_000.0  # |x|, |y| of an atom (1 mm)
MIN_ATOM_DISTANCE_UM = 1.0  # floor under every device's min_atom_distance (MockDevice's is 0): C6/r⁶ stays finite
MAX_PHASE_RAD = 1_000.0
MAX_LEARNING_RATE = 1e4  # learning_rate and position_learning_rate (per unit gradient)
MAX_SHOTS = 1_000_000  # shots per sequence (bundle, counts, lab-counts, gradient --shots)
MIN_BUNDLE_SHOTS = 2  # a standard error needs two shots
MAX_ATOMS = 256  # atoms in a bundle register (WeightedAnalogDevice's maximum)
MAX_EMULATED_ATOMS = 14  # lab-counts emulates the state vector: 2^14 amplitudes
MAX_SAMPLES = 256  # samples in one bundle (3 sequences each)
MAX_BUNDLE_NS = 1_000_000  # pulse time summed over a bundle's sequences: ~40 s to export, ~60 MB of pulser JSON
MAX_STEP = 1_000_000_000
MAX_TRAJECTORIES = 10_000  # noise trajectories for lab-counts
MAX_SEED = 2**63 - 1
SHOT_TOLERANCE = 0.9  # a counts file may lose up to 10 % of the manifest's shots (never gain any)
MAX_MANIFEST_BYTES = 64_000_000
MAX_COUNTS_BYTES = 64_000_000


def show(value) -> str:
    """``repr`` of a value for an error message, cut to 60 characters (huge integers included)."""
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python will print
        return f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>"
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(x: float) -> str:
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e16):
        return f"{int(x):,}"
    return f"{x:g}"


def check_number(value, key: str, *, low: float, high: float, integer: bool = False) -> float | int:
    """Return ``value`` if it is a finite (integer) number in [low, high]; else raise naming ``key``."""
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int if integer else int | float)
    if ok and isinstance(value, float):
        ok = math.isfinite(value)
    if not (ok and low <= value <= high):
        raise QepValueError(f"'{key}' must be {kind} in [{_bound(low)}, {_bound(high)}], not {show(value)}")
    return value
