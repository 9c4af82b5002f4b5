"""The fuzzing layer (issue #9): random texts, random points and random call arguments.

Properties: the two parsers build the same node or both raise ParseError, and nothing
else ever escapes; the compiled code equals the reference evaluator at any point (inf,
nan, huge and subnormal values included); whatever a caller passes, the interpreted and
compiled tiers give the same answer or the same ArgumentError.  Depth follows the
Hypothesis profile (tests/conftest.py: HYPOTHESIS_PROFILE=long for deep runs).
"""

import math
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symdiff as sd
from symdiff.frontend.long_parser import parse_long
from symdiff.frontend.parser import parse

NAMES = ["a", "b", "x1", "inf", "nan", "sin", "_y"]
FUNCTIONS = ["sin", "exp", "tanh", "log", "sqrt", "atan2", "maximum", "sigmoid", "abs"]
ARITY = {"atan2": 2, "maximum": 2}


def _text_tree():
    leaves = st.one_of(st.sampled_from(NAMES),
                       st.floats(allow_nan=False, allow_infinity=False).map(repr),
                       st.integers(0, 10**30).map(str))

    def extend(children):
        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children)
        call = st.sampled_from(FUNCTIONS).flatmap(lambda f: st.tuples(
            st.just(f), st.lists(children, min_size=ARITY.get(f, 1),
                                 max_size=ARITY.get(f, 1))))
        return st.one_of(
            binary.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            binary.map(lambda t: f"({t[0]}){t[1]}({t[2]})"),
            st.tuples(st.sampled_from(["-", "+", "--"]), children).map("".join),
            call.map(lambda c: f"{c[0]}({', '.join(c[1])})"))

    return st.recursive(leaves, extend, max_leaves=12)


TOKENS = st.lists(st.sampled_from(["a", "b", "1", "2.5e3", "(", ")", ",", "+", "-", "*",
                                   "/", "**", "sin", "atan2", "@", "%", ".", "'s'", "[",
                                   "lambda", "=", " ", "1j", "\n", "0x1F", "_", "$"]),
                  max_size=14).map("".join)


def _parsed(parser, text):
    try:
        return parser(text.strip())
    except sd.ParseError:
        return "ParseError"


@given(_text_tree())
def test_both_parsers_build_the_same_node(text):
    expected = _parsed(parse, text)
    assert _parsed(parse_long, text) is expected or (
        expected == "ParseError" == _parsed(parse_long, text))
    if expected != "ParseError":
        assert parse(str(expected)) is expected  # printing round-trips


@given(st.one_of(TOKENS, st.text(alphabet=string.printable, max_size=30)))
def test_any_text_parses_or_raises_parse_error(text):
    if not text.strip():
        return
    results = [_parsed(parse, text), _parsed(parse_long, text)]
    if "ParseError" not in results:
        assert results[0] is results[1]


# One compiled function of several ops, shared by every example (compiles cost seconds).
A, B = sd.symbols("a b")
F = sd.tanh(A * B) + sd.exp(-A) * sd.sqrt(1.0 + B * B) - sd.log1p(A * A) / (2.0 + sd.sin(B))


@pytest.fixture(scope="module")
def compiled():
    fn = sd.compile(F, [A, B], background=False)
    reference = [sd.grad(F, [A, B])]
    return fn, reference


special = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308,
                                                  math.inf, -math.inf, math.nan]))


def _equal(x, y):
    return (math.isnan(x) and math.isnan(y)) or x == y or abs(x - y) <= 1e-12 * max(
        abs(x), abs(y))


@given(special, special)
def test_compiled_code_equals_the_evaluator_at_any_point(compiled, a, b):
    fn, (gradient,) = compiled
    point = {"a": a, "b": b}
    assert _equal(fn(a, b), sd.evaluate(F, point))
    for got, expr in zip(fn.grad(a, b), gradient, strict=True):
        assert _equal(float(got), sd.evaluate(expr, point)), (a, b)


X = sd.vector("x", 3)


@pytest.fixture(scope="module")
def tiers():
    """The interpreted and compiled gradient of one array function."""
    fn = sd.compile(lambda x, c: (sd.tanh(x) * c).sum() + x[0] * x[2], args=[X, sd.symbol("c")],
                    background=True)
    fn.grad(np.zeros(3), 1.0)
    fn.wait()
    return fn.loader.evaluator("grad"), fn.loader.loaded["grad", False]


values = st.one_of(
    st.none(), st.text(max_size=3), st.complex_numbers(), special, st.integers(-5, 5),
    st.booleans(),
    st.lists(special, max_size=4),
    st.lists(st.lists(special, min_size=1, max_size=3), max_size=3),
    st.sampled_from([np.float32, np.int32, np.float64, np.complex128, np.longdouble, object])
    .flatmap(lambda dtype: st.lists(st.floats(-10, 10), min_size=0, max_size=4).map(
        lambda v: np.array(v, dtype=dtype))),
    st.tuples(st.integers(1, 4), st.integers(1, 4)).map(lambda s: np.ones(s)),
)


def _outcome(call, args):
    try:
        result = call(*args)
    except sd.ArgumentError as error:
        return str(error)
    return [np.asarray(r, dtype=float) for r in result]


@given(st.lists(values, min_size=0, max_size=3))
def test_any_arguments_get_the_same_answer_or_error_from_both_tiers(tiers, args):
    interpreted, compiled_call = tiers
    first, then = _outcome(interpreted, args), _outcome(compiled_call, args)
    if isinstance(first, str) or isinstance(then, str):
        assert first == then
    else:
        for p, q in zip(first, then, strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-300)


# Loops over open data: random steps of a scan whose trip count is the data's length,
# reading the data's tail too.  Each example compiles (a few tenths of a second), so a
# few of them run by default and the long profile runs many.
LOOP_OPS = ["sin", "tanh", "sigmoid", "softplus", "atan"]


def _loop_program(first, second, tail, reverse):
    w, a = sd.symbol("w", (None,)), sd.symbol("a")

    def step(c, x):
        g = getattr(sd, first)(c * a + x) + getattr(sd, second)(c[::-1]) * sd.sum(w[-tail:])
        return g, sd.sum(g)
    carry, ys = sd.scan(step, sd.stack([a, sd.const(1.0)]), w, reverse=reverse)
    return sd.sum(carry) + sd.sum(ys), [w, a]


def _result(call, args):
    try:
        result = call(*args)
    except (sd.ArgumentError, sd.ShapeError) as error:
        return f"{type(error).__name__}: {error}"
    return [np.asarray(r, dtype=float) for r in (result if isinstance(result, tuple)
                                                 else [result])]


@settings(max_examples=max(4, settings().max_examples // 10))
@given(st.sampled_from(LOOP_OPS), st.sampled_from(LOOP_OPS), st.integers(1, 3),
       st.booleans(), st.integers(0, 5), st.floats(-1.5, 1.5))
def test_random_scans_over_open_data_give_one_answer_from_both_tiers(
        first, second, tail, reverse, length, a):
    expr, args = _loop_program(first, second, tail, reverse)
    data = np.linspace(-1.0, 1.0, length)
    for method in ("forward", "grad"):
        interpreted = sd.compile(expr, args=args, background=True).loader.evaluator(method)
        compiled = getattr(sd.compile(expr, args=args, background=False), method)
        first_tier, second_tier = _result(interpreted, (data, a)), _result(compiled, (data, a))
        if isinstance(first_tier, str) or isinstance(second_tier, str):
            assert first_tier == second_tier
            assert length < tail  # only data too short for w[-tail:] is refused
            continue
        for p, q in zip(first_tier, second_tier, strict=True):
            np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-13)
