"""The constants of exp, expm1, tanh and sigmoid from arithmetic only, as every lowering
writes them inside loops over array elements (codegen.numba.loop_math for Numba,
codegen.native.loop_math for LLVM text): one table, so the lowerings agree bit for bit.

exp(x) = 2**k * (1 + p): k = round(x / ln 2) by adding and subtracting ROUND (no
float-to-int conversion), r = x - k ln 2 with ln 2 in two parts (k * LN2_HIGH is exact),
p = expm1(r) = r + r**2 P(r) by a fitted polynomial P, the power of two built from
exponent bits.  The reductions are multiply-adds (k ln 2 in two parts, k * LN2_HIGH exact).
"""

from __future__ import annotations

OVERFLOW = 710.0  # x past it: exp overflows (nan passes through the clamp)
UNDERFLOW = -746.0  # x below it: exp underflows to 0
INV_LN2 = 1.4426950408889634
ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer
LN2_HIGH = 0.6931471803691238  # ln 2 = LN2_HIGH + LN2_LOW; k * LN2_HIGH is exact
LN2_LOW = 1.9082149292705877e-10
EXPONENT_BIAS = 1023
POW2_LOW, POW2_HIGH = -1022.0, 1023.0  # exponents a normal double holds
TANH_SATURATION = 20.0  # tanh(20) rounds to 1
# (expm1(r) - r) / r**2 = 1/2! + r/3! + ... as a polynomial of degree 10 in r: mpmath's
# Chebyshev fit of it on |r| <= ln(2)/2 (chebyfit, 11 coefficients, 60 digits; near
# minimax, 4.9e-18 relative; tests/test_loop_math.py fits it again).  The Taylor series
# needs one term more for the same, and each term is a multiply-add per element.
POLYNOMIAL = [0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326141,
              0.0013888888888883752, 0.00019841269874800493, 2.4801587325533363e-05,
              2.7557255425746435e-06, 2.7557273661348637e-07, 2.510520637395701e-08,
              2.0914679376583935e-09]
