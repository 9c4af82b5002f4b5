"""A model neuron o = sigmoid(theta + sum_p w_p x_p) trained by SGD on the MSE loss.

The loss is written once as a Python function; symdiff compiles its value and gradient
with respect to the weights (the data point is passed in as further arguments).
Run: python examples/neuron_sgd.py
"""

import numpy as np

import symdiff as sd


def loss(w0, w1, theta, x0, x1, target):
    o = sd.sigmoid(theta + w0 * x0 + w1 * x1)
    return 0.5 * (o - target) ** 2


fn = sd.compile(loss, wrt=["w0", "w1", "theta"])  # arguments: w0, w1, theta, x0, x1, target
rng = np.random.default_rng(0)
points = rng.normal(size=(200, 2))
labels = (points[:, 0] + 2 * points[:, 1] > 0.5).astype(float)  # a linearly separable task

params = np.zeros(3)
for epoch in range(20):
    total = 0.0
    for (x0, x1), t in zip(points, labels, strict=True):
        value, grad = fn.value_and_grad(*params, x0, x1, t)
        params -= 0.5 * grad  # the gradient with respect to the weights only
        total += value
    if epoch % 5 == 4:
        print(f"epoch {epoch + 1}: mean loss {total / len(points):.4f}")

w0, w1, theta = params
accuracy = np.mean(((theta + points @ [w0, w1]) > 0) == (labels > 0.5))
print(f"weights {params.round(2)}, training accuracy {accuracy:.1%}")
