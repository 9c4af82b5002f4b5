"""The examples run and print what they promise."""

import pathlib
import subprocess
import sys

import dask.array as da
import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(name, cwd, *options):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *options], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout


def test_lecture_example(tmp_path):
    out = _run("lecture.py", tmp_path)
    assert "d2f/da db = c*(2*c) = 8.0" in out and "compiled gradient: [24. 24. 36.]" in out
    assert (tmp_path / "lecture_generated.py").exists()


def test_neuron_example_learns(tmp_path):
    out = _run("neuron_sgd.py", tmp_path)
    accuracy = float(out.rsplit("training accuracy ", 1)[1].strip().rstrip("%"))
    assert accuracy >= 95.0


def test_backprop_by_hand_agrees(tmp_path):
    assert "agreement: yes" in _run("backprop_by_hand.py", tmp_path)


def test_mlp_digits_reaches_95_percent(tmp_path):
    for activation in ("sigmoid", "tanh", "relu"):
        out = subprocess.run([sys.executable, str(EXAMPLES / "mlp_digits.py"), "--activation",
                              activation], cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout
        last = out.strip().splitlines()[-1]
        accuracy = float(last.split("test accuracy ")[1].split("%")[0])
        assert accuracy >= 95.0, (activation, last)
        assert float(last.split("time ")[1].split(" s")[0]) < 60.0


def test_mlp_regression_loss_falls(tmp_path):
    out = _run("mlp_regression.py", tmp_path)
    losses = [float(line.split("mean loss ")[1].split()[0]) for line in out.splitlines()]
    assert losses[-1] < losses[0] / 10


def test_newton_minimization_converges_with_sparse_hessians_and_hvps(tmp_path):
    out = _run("newton_minimize.py", tmp_path, "--m", "12")
    lines = [line for line in out.splitlines() if "area" in line]
    assert len(lines) == 2
    areas = {float(line.split("area ")[1].split(",")[0]) for line in lines}
    assert max(areas) - min(areas) < 1e-8
    for line in lines:
        assert float(line.split("max |gradient| ")[1].split(",")[0]) < 1e-6


def test_reaction_diffusion_with_the_sparse_jacobian(tmp_path):
    out = _run("reaction_diffusion.py", tmp_path, "--points", "100")
    assert out.count("successfully reached the end") == 2
    assert "needs 4 Jacobian-vector products" in out
    assert float(out.rsplit("at most ", 1)[1]) < 1e-6


def test_ode_rk4_gradient_through_a_scan(tmp_path):
    out = _run("ode_rk4.py", tmp_path, "--steps", "50")
    assert "50 RK4 steps" in out
    assert float(out.split("relative error at most ")[1].split()[0]) < 1e-6
    assert "largest gradient entry 0.0e+00" in out


def test_rnn_language_model_trains_through_a_scan(tmp_path):
    out = _run("rnn_language_model.py", tmp_path, "--length", "120", "--steps", "40")
    before, after = (float(v) for v in out.split("loss: ")[1].split(" bits")[0].split(" -> "))
    assert after < 0.7 * before


def test_dask_digits_trains_on_chunks_in_worker_processes(tmp_path):
    out = _run("dask_digits.py", tmp_path, "--steps", "60", "--chunk", "400")
    assert "1347 training rows in 4 chunks on 2 worker processes" in out
    assert float(out.split("test accuracy ")[1].split("%")[0]) >= 95.0


def test_dask_points_mean_gradient_matches_numpy(tmp_path):
    out = _run("dask_points.py", tmp_path, "--points", "200000", "--chunk", "50000")
    mean = [float(v) for v in out.split("mean gradient (")[1].split(")")[0].split(", ")]
    x = da.random.default_rng(0).uniform(-2.0, 2.0, size=200000, chunks=50000).compute()
    y = da.random.default_rng(1).uniform(-1.0, 3.0, size=200000, chunks=50000).compute()
    want = [np.mean(-2 * (1 - x) - 400 * x * (y - x ** 2)), np.mean(200 * (y - x ** 2))]
    np.testing.assert_allclose(mean, want, rtol=1e-4)


def test_gaussian_process_fit(tmp_path):
    out = _run("gaussian_process.py", tmp_path, "--points", "30")
    error = float(out.split("relative error ")[1].split()[0])
    assert error < 1e-6
    noise = float(out.split("noise variance ")[1].split()[0])
    assert 0.002 < noise < 0.05  # the data's is 0.01


def test_pytree_mlp_trains(tmp_path):
    out = _run("pytree_mlp.py", tmp_path, "--steps", "200")
    final = float(out.strip().splitlines()[-1].split("-> ")[1].split()[0])
    assert final < 0.02  # from about 1.1
