"""The constants of exp, expm1, tanh and sigmoid from arithmetic only, as every lowering
writes them inside loops over array elements (codegen.numba.loop_math for Numba,
codegen.native.loop_math for LLVM text): one table, so the lowerings agree bit for bit.

exp(x) = 2**k * (1 + p): k = round(x / ln 2) by adding and subtracting ROUND (no
float-to-int conversion), r = x - k ln 2 with ln 2 in two parts (k * LN2_HIGH is exact),
p = expm1(r) by a Taylor polynomial, the power of two built from exponent bits.
"""

from __future__ import annotations

import math

OVERFLOW = 710.0  # x past it: exp overflows (nan passes through the clamp)
UNDERFLOW = -746.0  # x below it: exp underflows to 0
INV_LN2 = 1.4426950408889634
ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer
LN2_HIGH = 0.6931471803691238  # ln 2 = LN2_HIGH + LN2_LOW; k * LN2_HIGH is exact
LN2_LOW = 1.9082149292705877e-10
EXPONENT_BIAS = 1023
POW2_LOW, POW2_HIGH = -1022.0, 1023.0  # exponents a normal double holds
TANH_SATURATION = 20.0  # tanh(20) rounds to 1
# 1/k! for k = 2..13: exp(r) - 1 = r (1 + r/2! + ... + r^12/13!) is exact to below one
# ulp for |r| <= ln(2)/2 (the first omitted term is 4e-18 relative).
TAYLOR = [1.0 / math.factorial(k) for k in range(2, 14)]
