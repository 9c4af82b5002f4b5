"""Helpers the tests import (fixtures stay in conftest.py)."""

import math


def close(x, y, rel=1e-9, abs_=1e-12):
    """Equal within tolerance, with nan == nan and equal infinities."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= max(rel * max(abs(x), abs(y)), abs_)
