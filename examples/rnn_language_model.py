"""Train a character-level recurrent network on a 1,000-character text: the loss over the
whole sequence is one ``sd.scan``, so the compiled gradient is one loop forward and one
loop back, whatever the sequence length.

    h_t = tanh(Wx x_t + Wh h_{t-1} + b),   loss = -sum_t log softmax(Wy h_t + c)[next char]

The inputs and the targets (one-hot rows) are the scanned arrays, with an open length:
one compile serves any text.  Adam, written here in NumPy, runs a few hundred steps;
the script prints the compile time, the time per gradient and the loss (in bits per
character) before and after.

    python examples/rnn_language_model.py [--length 1000] [--steps 300]
"""

import argparse
import time

import numpy as np

import symdiff as sd

sd.show_progress()  # slow compiles say what they are doing (stderr)

TEXT = "the quick brown fox jumps over the lazy dog. "
HIDDEN = 16


def loss(Wx, Wh, b, Wy, c, h0, inputs, targets):
    """Negative log-likelihood of the targets, summed over the sequence."""
    def step(h, xy):
        x, y = xy
        h = sd.tanh(Wx @ x + Wh @ h + b)
        return h, sd.sum(y * sd.log_softmax(Wy @ h + c))

    _, log_likelihoods = sd.scan(step, h0, (inputs, targets))
    return -sd.sum(log_likelihoods)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1000, help="characters of text")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps")
    options = parser.parse_args()
    text = (TEXT * (options.length // len(TEXT) + 2))[:options.length + 1]
    alphabet = sorted(set(text))
    V = len(alphabet)
    codes = np.array([alphabet.index(ch) for ch in text])
    onehot = np.eye(V)[codes]
    inputs, targets = onehot[:-1], onehot[1:]

    shapes = {"Wx": (HIDDEN, V), "Wh": (HIDDEN, HIDDEN), "b": (HIDDEN,), "Wy": (V, HIDDEN),
              "c": (V,)}
    params = [sd.symbol(name, shape) for name, shape in shapes.items()]
    data = [sd.vector("h0", HIDDEN), sd.symbol("inputs", (None, V)),
            sd.symbol("targets", (None, V))]
    begin = time.perf_counter()
    fn = sd.compile(loss, wrt=params, args=params + data, background=False)
    rng = np.random.default_rng(0)
    values = [rng.normal(size=s) * (0.3 if len(s) == 2 else 0.0) for s in shapes.values()]
    h0 = np.zeros(HIDDEN)
    first, _ = fn.value_and_grad(*values, h0, inputs, targets)
    print(f"{options.length} characters, alphabet of {V}: value and gradient compiled in "
          f"{time.perf_counter() - begin:.2f} s")

    m = [np.zeros_like(v) for v in values]
    s = [np.zeros_like(v) for v in values]
    rate, beta1, beta2 = 0.02, 0.9, 0.999
    begin = time.perf_counter()
    for k in range(1, options.steps + 1):
        value, grads = fn.value_and_grad(*values, h0, inputs, targets)
        for p, g, mk, sk in zip(values, grads, m, s, strict=True):
            mk *= beta1
            mk += (1 - beta1) * g
            sk *= beta2
            sk += (1 - beta2) * g * g
            p -= rate * (mk / (1 - beta1 ** k)) / (np.sqrt(sk / (1 - beta2 ** k)) + 1e-8)
    seconds = time.perf_counter() - begin
    final = fn(*values, h0, inputs, targets)
    bits = np.log2(np.e) / options.length
    print(f"{options.steps} Adam steps in {seconds:.2f} s "
          f"({seconds / options.steps * 1e3:.2f} ms per value and gradient)")
    print(f"loss: {first * bits:.3f} -> {final * bits:.3f} bits per character "
          f"(uniform guessing: {np.log2(V):.3f})")


if __name__ == "__main__":
    main()
