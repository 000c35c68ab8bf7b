"""Trains the plate reader (a small CNN with a CTC head) on rendered plates and exports ONNX.

    python train_reader.py DATA_DIR OUT.onnx --steps N --seed S

DATA_DIR holds train.npz and val.npz from dataset.py. CPU only (JAX). The network: grey input
1 x 32 x 128 scaled to [-1, 1]; five 3x3 convolutions and a 2x1 one with batch norm and ReLU,
pooled to a sequence of 32 steps of 128 features; a 1x3 convolution along the sequence; a 1x1 projection to
37 classes (CTC blank, then 0-9 A-Z) and a softmax. Batch norm is folded into the convolutions
at export. Output [1, 32, 37] probabilities, as the Rust reader (`PlateCtcReader`) expects.
"""
import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from layers import batch_norm, batches, folded_conv

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLASSES = 1 + len(ALPHABET)
MAX_LABEL = 10
H, W = 32, 128

# (name, kernel (h, w), in, out, pool after (h, w) or None, padding)
LAYERS = [
    ("c1", (3, 3), 1, 16, (2, 2), ((1, 1), (1, 1))),
    ("c2", (3, 3), 16, 32, (2, 2), ((1, 1), (1, 1))),
    ("c3", (3, 3), 32, 48, None, ((1, 1), (1, 1))),
    ("c4", (3, 3), 48, 64, (2, 1), ((1, 1), (1, 1))),
    ("c5", (3, 3), 64, 96, (2, 1), ((1, 1), (1, 1))),
    ("c6", (2, 1), 96, 128, None, ((0, 0), (0, 0))),
    ("c7", (1, 3), 128, 128, None, ((0, 0), (1, 1))),
]
FEATURES = LAYERS[-1][3]


def init(key):
    params, state = {}, {}
    for name, (kh, kw), cin, cout, _, _ in LAYERS:
        key, sub = jax.random.split(key)
        std = (2.0 / (kh * kw * cin)) ** 0.5
        params[name] = {
            "w": jax.random.normal(sub, (kh, kw, cin, cout)) * std,
            "gamma": jnp.ones(cout),
            "beta": jnp.zeros(cout),
        }
        state[name] = {"mean": jnp.zeros(cout), "var": jnp.ones(cout)}
    key, sub = jax.random.split(key)
    params["out"] = {
        "w": jax.random.normal(sub, (1, 1, FEATURES, CLASSES)) * (1.0 / FEATURES) ** 0.5,
        "b": jnp.zeros(CLASSES),
    }
    return params, state


def conv(x, w, padding):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def forward(params, state, x, train):
    """x: [B, H, W, 1] in [-1, 1]. Returns logits [B, T, CLASSES] and the new BN state."""
    new_state = {}
    for name, _, _, _, pool, padding in LAYERS:
        p = params[name]
        y = conv(x, p["w"], padding)
        y, new_state[name] = batch_norm(y, p, state[name], train)
        y = jax.nn.relu(y)
        if pool is not None:
            y = jax.lax.reduce_window(
                y, -jnp.inf, jax.lax.max, (1, *pool, 1), (1, *pool, 1), "VALID"
            )
        x = y
    logits = conv(x, params["out"]["w"], ((0, 0), (0, 0))) + params["out"]["b"]
    return logits[:, 0, :, :], new_state  # [B, 32, CLASSES]


def encode(labels):
    ids = np.zeros((len(labels), MAX_LABEL), np.int32)
    pad = np.ones((len(labels), MAX_LABEL), np.float32)
    for i, lab in enumerate(labels):
        for j, c in enumerate(lab[:MAX_LABEL]):
            ids[i, j] = 1 + ALPHABET.index(c)
            pad[i, j] = 0.0
    return ids, pad


def greedy(logits):
    best = np.asarray(logits).argmax(-1)
    out = []
    for row in best:
        s, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                s.append(ALPHABET[k - 1])
            prev = k
        out.append("".join(s))
    return out


def to_input(images):
    return (images.astype(np.float32) / 127.5 - 1.0)[..., None]


def augment(rng, images):
    """Shifts each image by up to 3 px across and 2 px down or up (edges repeated)."""
    out = np.empty_like(images)
    padded = np.pad(images, ((0, 0), (2, 2), (3, 3)), mode="edge")
    dy = rng.integers(0, 5, len(images))
    dx = rng.integers(0, 7, len(images))
    for i in range(len(images)):
        out[i] = padded[i, dy[i]:dy[i] + H, dx[i]:dx[i] + W]
    return out


def export_onnx(params, state, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    prev = "input"
    for name, (kh, kw), _, cout, pool, padding in LAYERS:
        inits += folded_conv(name, params[name], state[name])
        (pt, pb), (pl, pr) = padding
        nodes.append(helper.make_node("Conv", [prev, f"{name}.w", f"{name}.b"], [f"{name}.conv"],
                                      kernel_shape=[kh, kw], pads=[pt, pl, pb, pr]))
        nodes.append(helper.make_node("Relu", [f"{name}.conv"], [f"{name}.relu"]))
        prev = f"{name}.relu"
        if pool is not None:
            nodes.append(helper.make_node("MaxPool", [prev], [f"{name}.pool"],
                                          kernel_shape=list(pool), strides=list(pool)))
            prev = f"{name}.pool"
    w = np.asarray(params["out"]["w"]).transpose(3, 2, 0, 1).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "out.w"))
    inits.append(numpy_helper.from_array(np.asarray(params["out"]["b"]).astype(np.float32), "out.b"))
    inits.append(numpy_helper.from_array(np.array([1, CLASSES, -1], np.int64), "seq_shape"))
    nodes += [
        helper.make_node("Conv", [prev, "out.w", "out.b"], ["logits4"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["logits4", "seq_shape"], ["logits3"]),
        helper.make_node("Transpose", ["logits3"], ["logits"], perm=[0, 2, 1]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=2),
    ]
    graph = helper.make_graph(
        nodes, "plate_reader",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, H, W])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, W // 4, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="anpr train_reader.py")
    model.ir_version = 8
    model.doc_string = "ANPR plate reader: grey 1x1x32x128 in [-1,1] -> [1,32,37] CTC probs (blank, 0-9, A-Z)"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--check-every", type=int, default=500)
    ap.add_argument("--checkpoint", action="store_true",
                    help="also export OUT.stepN.onnx at each check (to look at a run in progress)")
    a = ap.parse_args()

    train = np.load(a.data / "train.npz")
    val = np.load(a.data / "val.npz")
    tx, ty = train["images"], list(train["labels"])
    vx, vy = val["images"], list(val["labels"])
    t_ids, t_pad = encode(ty)
    print(f"train {len(ty)} samples, val {len(vy)}", flush=True)

    params, state = init(jax.random.PRNGKey(a.seed))
    warmup = min(500, a.steps // 10)
    sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, warmup, a.steps, a.lr * 0.01)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(sched, weight_decay=1e-4))
    opt_state = opt.init(params)

    def loss_fn(params, state, x, ids, pad):
        logits, new_state = forward(params, state, x, True)
        t_pad_ = jnp.zeros(logits.shape[:2])
        loss = optax.ctc_loss(logits, t_pad_, ids, pad, blank_id=0)
        return loss.mean(), new_state

    @jax.jit
    def step(params, state, opt_state, x, ids, pad):
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, ids, pad)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    @jax.jit
    def infer(params, state, x):
        return forward(params, state, x, False)[0]

    def val_accuracy():
        preds = []
        for i in range(0, len(vy), 250):
            preds += greedy(infer(params, state, to_input(vx[i:i + 250])))
        return float(np.mean([p == t for p, t in zip(preds, vy)]))

    rng = np.random.default_rng(a.seed)
    start = time.time()
    picks = batches(rng, len(ty), a.batch)
    losses = []
    for it in range(1, a.steps + 1):
        idx = next(picks)
        x = to_input(augment(rng, tx[idx]))
        params, state, opt_state, loss = step(params, state, opt_state, x, t_ids[idx], t_pad[idx])
        losses.append(float(loss))
        if it % a.log_every == 0 or it == a.steps:
            msg = f"step {it}: loss {np.mean(losses[-a.log_every:]):.3f}, {time.time() - start:.0f} s"
            if it % a.check_every == 0 or it == a.steps:
                msg += f", val exact {100 * val_accuracy():.1f} %"
                if it < a.steps and a.checkpoint:
                    export_onnx(params, state, a.out.with_suffix(f".step{it}.onnx"))
            print(msg, flush=True)
    acc = val_accuracy()
    elapsed = time.time() - start
    a.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(params, state, a.out)

    # The exported graph must compute what the trained network does.
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(a.out), providers=["CPUExecutionProvider"])
        x = to_input(vx[:8])
        ref = np.asarray(jax.nn.softmax(infer(params, state, x), -1))
        got = np.stack([sess.run(None, {"input": x[i:i + 1].transpose(0, 3, 1, 2)})[0][0] for i in range(8)])
        diff = float(np.abs(ref - got).max())
        print(f"onnx check: max |diff| {diff:.2e}", flush=True)
        assert diff < 1e-3, diff
    except ImportError:
        print("onnxruntime not installed: export not cross-checked", flush=True)
    report = {"steps": a.steps, "batch": a.batch, "seed": a.seed, "train_samples": len(ty),
              "val_exact": acc, "train_seconds": round(elapsed)}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
