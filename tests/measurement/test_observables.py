"""Model observables as product lists (no 2^N tables) and the one-setting fast path for Z-diagonal products."""

import numpy as np

from qep_analog.device.rydberg import RydbergModel
from qep_analog.measurement import group_qubitwise
from qep_analog.measurement.observables import derivative_structure, output_structure
from qep_analog.models.pauli import PauliProduct


def test_structures_match_the_dense_maps_and_scale_past_dense_sizes():
    small = RydbergModel(positions_um=np.c_[np.arange(5) * 6.0, np.zeros(5)], device="AnalogDevice", omega=6.0,
                         detunings=np.full(5, 9.0), input_atoms=(0,), output_atoms=(4,)).hamiltonian()
    products, m = derivative_structure(small)
    table, dense_m = small.derivative_map
    assert products == table.products and np.array_equal(m, dense_m)
    assert output_structure(small)[0] == (PauliProduct.parse("n4"),)
    big = RydbergModel(positions_um=np.c_[np.arange(60) * 6.0, np.zeros(60)], device="AnalogDevice", omega=6.0,
                       detunings=np.full(60, 9.0)).hamiltonian()
    products, m = derivative_structure(big)
    assert len(products) == 60 + 60 * 59 // 2 and m.shape == (len(big.parameter_names), len(products))


def test_z_diagonal_products_share_one_setting():
    products = [PauliProduct.parse(t) for t in ["n0", "Z1", "n0 n2", "Z1 Z2 n3"]]
    settings = group_qubitwise(products, 4)
    assert len(settings) == 1 and settings[0].basis == "ZZZZ" and settings[0].members == (0, 1, 2, 3)
    mixed = group_qubitwise(products + [PauliProduct.parse("X0")], 4)
    assert len(mixed) == 2
