"""Crossbar.load (compiled targets + mapping) and code_step / code_value: recover split into
a per-column step and the codes' values, as the compiler's runtime uses them."""

import numpy as np
import pytest

from cimflow.config import preset
from cimflow.golden.array import Crossbar, Mapping
from cimflow.golden.mvm import MvmSettings, code_step, code_value, mvm, recover

CFG = preset("small")


def test_load_equals_program_and_recover_is_code_value_times_code_step():
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (6, 10))
    a = Crossbar(CFG)
    m = a.program(w)
    b = Crossbar(CFG)
    b.load(a.target, Mapping(m.n_in, m.n_out, m.w_max, m.g_min, m.g_max))
    np.testing.assert_array_equal(a.g, b.g)
    st = MvmSettings.from_config(CFG, in_bits=4, out_bits=6, v_decr=0.2)
    x = rng.integers(-7, 8, (50, 6))
    ra, rb = mvm(a, x, st), mvm(b, x, st)
    np.testing.assert_array_equal(ra.mag, rb.mag)
    for centre in (True, False):
        y = code_value(rb.sign, rb.mag, centre)[:, :10] * code_step(b, st)[:10]
        np.testing.assert_allclose(y, recover(ra, a, centre), rtol=1e-12)
    # one step is the ADC LSB times Den / g_max * w_max, by hand
    den = a.target[:12, :10].sum(0)
    lsb = 2 * st.v_decr_applied / st.v_read / 2 ** st.k
    np.testing.assert_allclose(code_step(b, st)[:10], lsb * den * m.w_max / m.g_max,
                               rtol=1e-3)


def test_code_value_reads_zero_charge_as_zero():
    v = code_value(np.array([0, 0, 1, 1]), np.array([0, 2, 0, 3]))
    np.testing.assert_array_equal(v, [0.0, -2.5, 0.5, 3.5])


def test_load_refuses_a_wrong_shape_or_mapping():
    xb = Crossbar(CFG)
    with pytest.raises(ValueError, match="shape"):
        xb.load(np.zeros((3, 3)), Mapping(1, 1, 1.0, 1.0, 40.0))
    with pytest.raises(ValueError, match="does not fit"):
        xb.load(np.zeros((CFG.rows, CFG.cols)), Mapping(CFG.rows, 1, 1.0, 1.0, 40.0))
