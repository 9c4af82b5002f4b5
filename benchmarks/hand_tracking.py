"""A hand-tracking model (ADBench / GradBench "ht", the simple variant) against JAX:
the residuals of a skinned hand mesh posed by 26 parameters against observed points, and
their Jacobian (3 x points rows, 26 columns: symdiff ``fn.jacobian``, JAX ``jacfwd``).

    python -m benchmarks.hand_tracking [--sizes 100 1000 10000] [--systems symdiff jax]

The model is made up here with ADBench's shapes: 22 bones (a forearm, a wrist and five
fingers of four bones), 544 vertices each skinned to up to three bones, rigid base
transforms, and the pose as ADBench maps it (global rotation as an angle-axis vector,
a global translation, two angles for each finger's first joint and one for the next two,
rotations as Euler angles in xzy order).  It is written once, as a NumPy or JAX user
writes it: a Python loop over the bones composing small rotations, then the skinning
as one einsum over all bones and vertices, then the points' vertices gathered.  The
point count changes the captured correspondences, so each count is a function of its
own (as each GradBench dataset is).  Each system runs in a fresh process (empty symdiff
cache, ``SYMDIFF_BACKGROUND=0``): first = from building the function until value and
Jacobian have returned once; per call = median of timed loops; both Jacobians are
checked against each other.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .worker import _per_call, print_side_by_side, same_checksum, side_by_side_options

SIZES = ("100", "1000", "10000")
BONES, VERTICES, PARAMETERS = 22, 544, 26
# Each bone's parent (-1: the root): forearm, wrist, then five chains of four bones.
PARENTS = [-1, 0] + [p for f in range(5) for p in (1, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f)]


def _rotation(lib, axis_angle):
    """Rodrigues' rotation matrix of an angle-axis 3-vector (a nonzero angle)."""
    angle = lib.sqrt(lib.sum(axis_angle * axis_angle))
    x, y, z = (axis_angle[k] / angle for k in range(3))
    c, s = lib.cos(angle), lib.sin(angle)
    t = 1.0 - c
    return lib.stack([lib.stack([t * x * x + c, t * x * y - s * z, t * x * z + s * y]),
                      lib.stack([t * x * y + s * z, t * y * y + c, t * y * z - s * x]),
                      lib.stack([t * x * z - s * y, t * y * z + s * x, t * z * z + c])])


def _euler(lib, ax, az, ay):
    """The rotation Rz @ Ry @ Rx of Euler angles given in xzy order (zero: 0.0)."""
    def turn(angle, i, j):
        c, s = lib.cos(angle), lib.sin(angle)
        rows = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        rows[i][i], rows[j][j], rows[i][j], rows[j][i] = c, c, -s, s
        return lib.stack([lib.stack(row) for row in rows])
    return turn(az, 0, 1) @ turn(ay, 2, 0) @ turn(ax, 1, 2)


def _bone_angles(theta):
    """Each bone's (x, z, y) Euler angles: ADBench's pose parameters."""
    angles = [(0.0, 0.0, 0.0)] * 2
    for f in range(5):
        k = 6 + 4 * f
        angles += [(theta[k], theta[k + 1], 0.0), (theta[k + 2], 0.0, 0.0),
                   (theta[k + 3], 0.0, 0.0), (0.0, 0.0, 0.0)]
    return angles


def model(seed: int = 0) -> dict:
    """The made-up hand: base transforms, vertices and skinning weights."""
    rng = np.random.default_rng(seed)
    relatives = []
    for _ in range(BONES):
        axis = rng.normal(size=3) * 0.3
        rotation = np.asarray(_rotation(np, axis + 1e-3))
        relatives.append((rotation, rng.normal(size=3) * 0.5))
    absolutes = []
    for bone, (rotation, shift) in enumerate(relatives):
        if PARENTS[bone] < 0:
            absolutes.append((rotation, shift))
        else:
            parent_rotation, parent_shift = absolutes[PARENTS[bone]]
            absolutes.append((parent_rotation @ rotation, parent_rotation @ shift + parent_shift))
    inverses = [(r.T, -r.T @ t) for r, t in absolutes]
    weights = np.zeros((BONES, VERTICES))
    for v in range(VERTICES):
        bones = rng.choice(BONES, size=rng.integers(1, 4), replace=False)
        weights[bones, v] = rng.uniform(0.2, 1.0, size=len(bones))
    weights /= weights.sum(axis=0)
    return {"relative_rotations": np.stack([r for r, _ in relatives]),
            "relative_shifts": np.stack([t for _, t in relatives]),
            "inverse_rotations": np.stack([r for r, _ in inverses]),
            "inverse_shifts": np.stack([t for _, t in inverses]),
            "vertices": rng.normal(size=(3, VERTICES)), "weights": weights}


def objective(lib, hand: dict, correspondences, points):
    """The residuals ``points - posed vertices[correspondences]`` of pose ``theta``,
    raveled (3 x points)."""
    def residuals(theta):
        absolutes = []
        for bone, angles in enumerate(_bone_angles(theta)):
            rotation = hand["relative_rotations"][bone] @ _euler(lib, *angles)
            shift = hand["relative_shifts"][bone]
            if PARENTS[bone] >= 0:
                parent_rotation, parent_shift = absolutes[PARENTS[bone]]
                rotation, shift = parent_rotation @ rotation, parent_rotation @ shift + parent_shift
            absolutes.append((rotation, shift))
        rotations = lib.stack([r @ hand["inverse_rotations"][b]
                               for b, (r, _) in enumerate(absolutes)])
        shifts = lib.stack([r @ hand["inverse_shifts"][b] + t
                            for b, (r, t) in enumerate(absolutes)])
        per_bone = lib.einsum("bij,jv->biv", rotations, hand["vertices"]) + shifts[:, :, None]
        skinned = lib.sum(per_bone * hand["weights"][:, None, :], axis=0)
        posed = _rotation(lib, theta[0:3]) @ skinned + theta[3:6][:, None]
        return lib.ravel(points - posed[:, correspondences])
    return residuals


def problem(count: int):
    """(the hand, the correspondences, the observed points, a pose to evaluate at)."""
    hand, rng = model(), np.random.default_rng(1)
    correspondences = rng.integers(0, VERTICES, size=count)
    truth = rng.normal(size=PARAMETERS) * 0.3
    points = np.zeros((3, count))
    points = -objective(np, hand, correspondences, points)(truth).reshape(3, count)
    points += rng.normal(size=points.shape) * 0.01
    return hand, correspondences, points, truth + rng.normal(size=PARAMETERS) * 0.05


def _symdiff(residuals):
    import symdiff as sd

    fn = sd.compile(residuals, args=[sd.vector("theta", PARAMETERS)], background=False)
    return fn, fn.jacobian


def _jax(residuals):
    import jax

    jax.config.update("jax_enable_x64", True)
    jitted = jax.jit(residuals), jax.jit(jax.jacfwd(residuals))
    return tuple((lambda *a, f=f: jax.block_until_ready(f(*a))) for f in jitted)


def worker(system: str, size: str) -> dict:
    """One row, in this process."""
    hand, correspondences, points, theta = problem(int(size))
    if system == "jax":
        import jax
        import jax.numpy as jnp
        jax.block_until_ready(jax.jit(lambda v: v + 1.0)(1.0))  # XLA's client, before the clock
        lib = jnp
    else:
        import symdiff.runtime.transforms  # noqa: F401 - the runtime, before the clock
        lib = np
    start = time.perf_counter()
    value, jacobian = (_jax if system == "jax" else _symdiff)(
        objective(lib, hand, correspondences, points))
    value(theta)
    result = np.asarray(jacobian(theta))
    first = time.perf_counter() - start
    return {"system": system, "size": size, "first_s": first,
            "value_s": _per_call(value, (theta,)), "jacobian_s": _per_call(jacobian, (theta,)),
            "checksum": float(np.sum(result * np.arange(result.size).reshape(result.shape)))}


def main(argv=None) -> int:
    options = side_by_side_options(argv, "hand-tracking residuals and Jacobian against JAX",
                                   SIZES, worker)
    if options is None:
        return 0
    print_side_by_side("benchmarks.hand_tracking", options, "points",
                       [("value ms", "value_s"), ("Jacobian ms", "jacobian_s")], "jacobian_s",
                       same_checksum)
    return 0


if __name__ == "__main__":
    sys.exit(main())
