"""What both trainers' networks share (train_reader.py, train_detector.py): batch norm as they
train it and fold it at export."""
import jax.numpy as jnp
import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.9


def batches(rng, n, size):
    """Indices of `size` of the `n` examples at a time, each pass over them in a new order drawn
    from `rng` (when the next batch would run past the end)."""
    order, pos = rng.permutation(n), 0
    while True:
        if pos + size > n:
            order, pos = rng.permutation(n), 0
        yield order[pos:pos + size]
        pos += size


def batch_norm(y, p, s, train):
    """y normalised over batch, height and width (train) or by the running statistics `s`
    (inference), then scaled by p["gamma"] and shifted by p["beta"]; and the running statistics
    after this batch."""
    if train:
        mean = y.mean(axis=(0, 1, 2))
        var = y.var(axis=(0, 1, 2))
        s = {
            "mean": BN_MOMENTUM * s["mean"] + (1 - BN_MOMENTUM) * mean,
            "var": BN_MOMENTUM * s["var"] + (1 - BN_MOMENTUM) * var,
        }
    else:
        mean, var = s["mean"], s["var"]
    return (y - mean) / jnp.sqrt(var + BN_EPS) * p["gamma"] + p["beta"], s


def folded_conv(name, p, s):
    """The ONNX initializers `{name}.w` (OIHW) and `{name}.b` of a convolution with its batch
    norm folded in (running statistics `s`), as the exports write them."""
    from onnx import numpy_helper

    scale = np.asarray(p["gamma"]) / np.sqrt(np.asarray(s["var"]) + BN_EPS)
    w = np.asarray(p["w"]) * scale  # HWIO, scaled per output channel
    b = np.asarray(p["beta"]) - np.asarray(s["mean"]) * scale
    return [
        numpy_helper.from_array(w.transpose(3, 2, 0, 1).astype(np.float32), f"{name}.w"),
        numpy_helper.from_array(b.astype(np.float32), f"{name}.b"),
    ]
