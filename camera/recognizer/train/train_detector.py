"""Trains the plate detector (a small fully convolutional network) on rendered frames, exports ONNX.

    python train_detector.py DATA_DIR OUT.onnx --steps N --seed S [--checkpoint DIR]
    python train_detector.py DATA_DIR OUT.onnx --eval-only [--box-thresholds T ...]

DATA_DIR holds train.npz and val.npz from detector_dataset.py. CPU only (JAX).

The contract with the Rust side (a drop-in for PP-OCR's DB text detector):
- input "x": float32 [1, 3, H, W], H and W any multiples of 32, channels BGR, pixel / 127.5 - 1
  (PP-OCR's detector input; the letterbox pads with 0);
- output "prob": float32 [1, 1, H/4, W/4], the probability (sigmoid in the graph) that a cell
  lies in a plate's shrunk character box (frames.label_map).

The network (LAYERS): stride-2 3x3 convolutions 3->8->16 (1/4), a residual 3x3 one at 1/4,
a stride-2 one 16->32 (1/8); four residual
3x3 convolutions at 1/8 with dilations 1, 2, 4, 8 (a plate vs a word needs width); a 1x1
reduction to 16, nearest x2 upsampling added to the 1/4 features, a 3x3 convolution, a 1x1 head
and a sigmoid. Batch norm during training, folded into the convolutions at export. ONNX ops:
Conv, Relu, Add, Resize (nearest, constant scales), Sigmoid; opset 13.

`postprocess` is a Python copy of the Rust post-processing (regions_from_probability_map):
threshold, 8-connected components, size and score filters, the component's box grown by
area * unclip / (2 (w + h)) cells on every side, times 4 to pixels. `evaluate` reports recall
(true character boxes matched at IoU >= 0.5), false positives per frame and the mean IoU of the
matches on the validation frames, for several unclip ratios.
"""
import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import ndimage

from layers import batch_norm, batches, folded_conv

STRIDE = 4
CROP_H, CROP_W = 224, 320

# (name, kernel, in, out, stride, dilation, residual)
LAYERS = [
    ("c1", 3, 3, 8, 2, 1, False),
    ("c2", 3, 8, 16, 2, 1, False),   # 1/4
    ("c2b", 3, 16, 16, 1, 1, True),  # 1/4: the skip (small plates need detail here)
    ("c3", 3, 16, 32, 2, 1, False),  # 1/8
    ("d1", 3, 32, 32, 1, 1, True),
    ("d2", 3, 32, 32, 1, 2, True),
    ("d3", 3, 32, 32, 1, 4, True),
    ("d4", 3, 32, 32, 1, 8, True),
    ("r", 1, 32, 16, 1, 1, False),   # then x2 up, + skip
    ("f", 3, 16, 16, 1, 1, False),
]
SKIP = "c2b"
UP_AFTER = "r"
HEAD_IN = 16

# The smallest component kept, in map cells, as the Rust post-processing keeps it (2 and 6);
# --min-side / --min-cells try others (docs/recognizer.md, "Our own plate detector").
MIN_SIDE, MIN_CELLS = 2, 6
# Post-processing defaults (the Rust DetectorSettings' threshold and box_threshold).
THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIPS = (0.8, 1.0, 1.2, 1.5)


def macs(h, w):
    """Multiply-adds of the network for an h x w input."""
    total, hh, ww = 0, h, w
    for name, k, cin, cout, stride, _, _ in LAYERS:
        hh, ww = hh // stride, ww // stride
        total += hh * ww * k * k * cin * cout
        if name == UP_AFTER:
            hh, ww = hh * 2, ww * 2
    return total + hh * ww * HEAD_IN


def init(key):
    params, state = {}, {}
    for name, k, cin, cout, _, _, res in LAYERS:
        key, sub = jax.random.split(key)
        std = (2.0 / (k * k * cin)) ** 0.5
        params[name] = {
            "w": jax.random.normal(sub, (k, k, cin, cout)) * std,
            "gamma": jnp.full(cout, 0.2 if res else 1.0),
            "beta": jnp.zeros(cout),
        }
        state[name] = {"mean": jnp.zeros(cout), "var": jnp.ones(cout)}
    key, sub = jax.random.split(key)
    params["head"] = {
        "w": jax.random.normal(sub, (1, 1, HEAD_IN, 1)) * (1.0 / HEAD_IN) ** 0.5,
        # Start near the prior (few cells are positive).
        "b": jnp.full(1, -4.0),
    }
    return params, state


def conv(x, w, stride, dilation):
    k = w.shape[0]
    pad = dilation * (k - 1) // 2
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), ((pad, pad), (pad, pad)), rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def forward(params, state, x, train):
    """x: [B, H, W, 3] BGR in [-1, 1]. Returns logits [B, H/4, W/4] and the new BN state."""
    new_state = {}
    skip = None
    for name, _, _, _, stride, dil, res in LAYERS:
        p = params[name]
        y = conv(x, p["w"], stride, dil)
        y, new_state[name] = batch_norm(y, p, state[name], train)
        y = jax.nn.relu(y)
        if res:
            y = y + x
        if name == SKIP:
            skip = y
        if name == UP_AFTER:
            y = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2) + skip
        x = y
    logits = conv(x, params["head"]["w"], 1, 1) + params["head"]["b"]
    return logits[..., 0], new_state


def to_input(images):
    """uint8 RGB [B, H, W, 3] -> BGR float in [-1, 1] (PP-OCR's detector input)."""
    return images[..., ::-1].astype(np.float32) / 127.5 - 1.0


def crops(rng, images, labels):
    """Random CROP_H x CROP_W crops at offsets that are multiples of the stride (labels stay
    aligned). No flip: plates are not mirrored."""
    n, h, w = images.shape[:3]
    ys = rng.integers(0, (h - CROP_H) // STRIDE + 1, n) * STRIDE
    xs = rng.integers(0, (w - CROP_W) // STRIDE + 1, n) * STRIDE
    xi = np.stack([images[i, y:y + CROP_H, x:x + CROP_W] for i, (y, x) in enumerate(zip(ys, xs))])
    li = np.stack([labels[i, y // STRIDE:(y + CROP_H) // STRIDE, x // STRIDE:(x + CROP_W) // STRIDE]
                   for i, (y, x) in enumerate(zip(ys, xs))])
    return xi, li


# ---- export ----

def export_onnx(params, state, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    prev, skip = "x", None
    for name, k, _, _, stride, dil, res in LAYERS:
        inits += folded_conv(name, params[name], state[name])
        pad = dil * (k - 1) // 2
        nodes.append(helper.make_node("Conv", [prev, f"{name}.w", f"{name}.b"], [f"{name}.conv"],
                                      kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2,
                                      dilations=[dil] * 2))
        nodes.append(helper.make_node("Relu", [f"{name}.conv"], [f"{name}.relu"]))
        out = f"{name}.relu"
        if res:
            nodes.append(helper.make_node("Add", [out, prev], [f"{name}.res"]))
            out = f"{name}.res"
        if name == SKIP:
            skip = out
        if name == UP_AFTER:
            inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up.scales"))
            nodes.append(helper.make_node("Resize", [out, "", "up.scales"], [f"{name}.up"], mode="nearest",
                                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            nodes.append(helper.make_node("Add", [f"{name}.up", skip], [f"{name}.sum"]))
            out = f"{name}.sum"
        prev = out
    w = np.asarray(params["head"]["w"]).transpose(3, 2, 0, 1).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "head.w"))
    inits.append(numpy_helper.from_array(np.asarray(params["head"]["b"]).astype(np.float32), "head.b"))
    nodes += [
        helper.make_node("Conv", [prev, "head.w", "head.b"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["prob"]),
    ]
    graph = helper.make_graph(
        nodes, "plate_detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1, "H4", "W4"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="anpr train_detector.py")
    model.ir_version = 8
    model.doc_string = ("ANPR plate detector: x [1,3,H,W] BGR pixel/127.5-1 (H, W multiples of 32) -> "
                        "prob [1,1,H/4,W/4], probability of a plate's shrunk character box")
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# ---- post-processing (a copy of the Rust regions_from_probability_map) and metrics ----

def postprocess(prob, threshold=THRESHOLD, box_threshold=BOX_THRESHOLD, unclip=1.0, frame_w=None, frame_h=None):
    """prob: [h, w] map. Returns [(x0, y0, x1, y1, score)] in pixels (cells times the frame's
    scale, clipped to the frame, boxes under 4 px dropped)."""
    mh, mw = prob.shape
    frame_w = frame_w or mw * STRIDE
    frame_h = frame_h or mh * STRIDE
    sx, sy = frame_w / mw, frame_h / mh
    lab, n = ndimage.label(prob > threshold, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones_like(prob), lab, idx)
    sums = ndimage.sum_labels(prob, lab, idx)
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab)):
        bh = sl[0].stop - sl[0].start
        bw = sl[1].stop - sl[1].start
        count = counts[i]
        if min(bw, bh) < MIN_SIDE or count < MIN_CELLS:
            continue
        score = sums[i] / count
        if score < box_threshold:
            continue
        d = count * unclip / (2.0 * (bw + bh))
        x0, y0 = (sl[1].start - d) * sx, (sl[0].start - d) * sy
        x1, y1 = (sl[1].stop + d) * sx, (sl[0].stop + d) * sy
        x0, x1 = np.clip([x0, x1], 0, frame_w)
        y0, y1 = np.clip([y0, y1], 0, frame_h)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            out.append((float(x0), float(y0), float(x1), float(y1), float(score)))
    return out


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def coverage(box, truth_box):
    """The share of `truth_box` inside `box`."""
    ix = max(0.0, min(box[2], truth_box[2]) - max(box[0], truth_box[0]))
    iy = max(0.0, min(box[3], truth_box[3]) - max(box[1], truth_box[1]))
    area = (truth_box[2] - truth_box[0]) * (truth_box[3] - truth_box[1])
    return ix * iy / area if area > 0 else 0.0


def truth(quads, counts, w, h):
    """Per frame: the characters' axis-aligned boxes clipped to the frame, and whether each
    counts for recall (at least half of it inside the frame)."""
    out = []
    for qs, n in zip(quads, counts):
        boxes = []
        for q in qs[:n]:
            x0, y0 = q[:, 0].min(), q[:, 1].min()
            x1, y1 = q[:, 0].max(), q[:, 1].max()
            c = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
            full = (x1 - x0) * (y1 - y0)
            vis = max(0, c[2] - c[0]) * max(0, c[3] - c[1])
            boxes.append((c, vis >= 0.5 * full))
        out.append(boxes)
    return out


def evaluate(probs, gts, w, h, threshold=THRESHOLD, box_threshold=BOX_THRESHOLD, unclips=UNCLIPS):
    """Recall, false positives per frame and mean IoU of matches per unclip ratio; recall by the
    characters' height too."""
    report = {}
    for u in unclips:
        found, total, fps, ious, covers = 0, 0, 0, [], []
        by_h = {"<8": [0, 0], "8-16": [0, 0], "16-32": [0, 0], ">=32": [0, 0]}
        for prob, gt in zip(probs, gts):
            preds = postprocess(prob, threshold, box_threshold, u, w, h)
            for p in preds:
                if all(iou(p, g) < 0.5 for g, _ in gt):
                    fps += 1
            for g, counted in gt:
                if not counted:
                    continue
                best_box = max(preds, key=lambda p: iou(p, g), default=None)
                best = iou(best_box, g) if best_box is not None else 0.0
                total += 1
                gh = g[3] - g[1]
                key = "<8" if gh < 8 else "8-16" if gh < 16 else "16-32" if gh < 32 else ">=32"
                by_h[key][1] += 1
                if best >= 0.5:
                    found += 1
                    by_h[key][0] += 1
                    ious.append(best)
                    covers.append(coverage(best_box, g))
        report[str(u)] = {
            "recall": found / max(total, 1), "found": found, "plates": total,
            "fp_per_frame": fps / max(len(probs), 1),
            "mean_iou": float(np.mean(ious)) if ious else 0.0,
            # How much of the true character box the matched box holds (the reader needs it all).
            "median_coverage": float(np.median(covers)) if covers else 0.0,
            "covered_95": float(np.mean(np.array(covers) >= 0.95)) if covers else 0.0,
            "recall_by_char_height": {k: f"{a}/{b}" for k, (a, b) in by_h.items()},
        }
    return report


def ort_probs(sess, images):
    """The exported model's probability maps, one frame at a time (as the camera runs it)."""
    return [sess.run(None, {"x": to_input(images[i:i + 1]).transpose(0, 3, 1, 2)})[0][0, 0]
            for i in range(len(images))]


def print_report(report, threshold, box_threshold):
    for u, r in report.items():
        print(f"val threshold {threshold} box_threshold {box_threshold} unclip {u}: "
              f"recall {100 * r['recall']:.1f} % ({r['found']}/{r['plates']}), "
              f"fp/frame {r['fp_per_frame']:.2f}, mean IoU {r['mean_iou']:.3f}, "
              f"true box covered: median {100 * r['median_coverage']:.1f} %, "
              f">= 95 % in {100 * r['covered_95']:.1f} % of matches, "
              f"by char height {r['recall_by_char_height']}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--dice", type=float, default=1.0, help="weight of the dice loss beside BCE")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--check-every", type=int, default=500)
    ap.add_argument("--checkpoint", type=Path, help="directory: params and an ONNX export at each check")
    ap.add_argument("--eval-only", action="store_true",
                    help="no training: evaluate the exported OUT on the validation frames")
    ap.add_argument("--threshold", type=float, default=THRESHOLD,
                    help="pixel threshold on the map (--eval-only)")
    ap.add_argument("--box-thresholds", type=float, nargs="+", default=[BOX_THRESHOLD],
                    help="box thresholds to evaluate at (--eval-only)")
    ap.add_argument("--min-side", type=int, default=MIN_SIDE,
                    help="smallest component side kept, cells (--eval-only)")
    ap.add_argument("--min-cells", type=int, default=MIN_CELLS,
                    help="smallest component kept, cells (--eval-only)")
    a = ap.parse_args()
    globals().update(MIN_SIDE=a.min_side, MIN_CELLS=a.min_cells)

    val = np.load(a.data / "val.npz")
    vx, vq, vc = val["images"], val["quads"], val["counts"]
    vh, vw = vx.shape[1:3]
    gts = truth(vq, vc, vw, vh)
    if a.eval_only:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(a.out), providers=["CPUExecutionProvider"])
        probs = ort_probs(sess, vx)
        for bt in a.box_thresholds:
            print_report(evaluate(probs, gts, vw, vh, a.threshold, bt), a.threshold, bt)
        return
    train = np.load(a.data / "train.npz")
    tx, tl = train["images"], train["labels"]
    print(f"train {len(tx)} frames {tx.shape[2]}x{tx.shape[1]}, val {len(vx)} frames {vw}x{vh}; "
          f"positive cells {100 * tl.mean():.2f} %", flush=True)
    n_params = sum(k * k * cin * cout + cout for _, k, cin, cout, _, _, _ in LAYERS) + HEAD_IN + 1
    print(f"network: {n_params} parameters after folding ({4 * n_params} bytes of float32), "
          f"{macs(448, 800) / 1e6:.1f} M multiply-adds at 800x448", flush=True)

    params, state = init(jax.random.PRNGKey(a.seed))
    warmup = min(300, a.steps // 10)
    sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, warmup, a.steps, a.lr * 0.01)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(sched, weight_decay=1e-4))
    opt_state = opt.init(params)

    def loss_fn(params, state, x, y):
        logits, new_state = forward(params, state, x, True)
        bce = optax.sigmoid_binary_cross_entropy(logits, y).mean()
        p = jax.nn.sigmoid(logits)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        return bce + a.dice * dice, new_state

    @jax.jit
    def step(params, state, opt_state, x, y):
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    @jax.jit
    def infer(params, state, x):
        return jax.nn.sigmoid(forward(params, state, x, False)[0])

    def val_probs(n=None):
        n = len(vx) if n is None else min(n, len(vx))
        return [np.asarray(infer(params, state, to_input(vx[i:i + 1])))[0] for i in range(n)]

    def checkpoint(it):
        if a.checkpoint is None:
            return
        a.checkpoint.mkdir(parents=True, exist_ok=True)
        flat = {f"p/{k}/{kk}": np.asarray(v) for k, d in params.items() for kk, v in d.items()}
        flat.update({f"s/{k}/{kk}": np.asarray(v) for k, d in state.items() for kk, v in d.items()})
        np.savez(a.checkpoint / "detector-params.npz", step=it, **flat)
        export_onnx(params, state, a.checkpoint / "detector-checkpoint.onnx")

    rng = np.random.default_rng(a.seed)
    start = time.time()
    picks = batches(rng, len(tx), a.batch)
    losses = []
    for it in range(1, a.steps + 1):
        idx = np.sort(next(picks))
        xi, li = crops(rng, tx[idx], tl[idx])
        params, state, opt_state, loss = step(params, state, opt_state, to_input(xi), li.astype(np.float32))
        losses.append(float(loss))
        if it % a.log_every == 0 or it == a.steps:
            msg = f"step {it}: loss {np.mean(losses[-a.log_every:]):.4f}, {time.time() - start:.0f} s"
            if it % a.check_every == 0 and it < a.steps:
                r = evaluate(val_probs(60), gts[:60], vw, vh, unclips=(1.0,))["1.0"]
                msg += f", val[60] recall {100 * r['recall']:.1f} %, fp/frame {r['fp_per_frame']:.2f}"
                checkpoint(it)
            print(msg, flush=True)
    elapsed = time.time() - start
    checkpoint(a.steps)
    export_onnx(params, state, a.out)

    # The exported graph must compute what the trained network does (two input sizes).
    import onnxruntime as ort

    sess = ort.InferenceSession(str(a.out), providers=["CPUExecutionProvider"])
    diffs = []
    for hh, ww in ((448, 800), (224, 320)):
        x = to_input(vx[:2, :hh, :ww])
        ref = np.asarray(infer(params, state, x))
        got = np.stack([sess.run(None, {"x": x[i:i + 1].transpose(0, 3, 1, 2)})[0][0, 0] for i in range(2)])
        assert got.shape == ref.shape, (got.shape, ref.shape)
        diffs.append(float(np.abs(ref - got).max()))
        print(f"onnx check {ww}x{hh}: max |diff| {diffs[-1]:.2e}", flush=True)
    assert max(diffs) < 1e-3, diffs

    # Validation figures from the exported model (what tract will run).
    t = time.time()
    probs = ort_probs(sess, vx)
    ort_ms = 1000 * (time.time() - t) / len(vx)
    report = evaluate(probs, gts, vw, vh)
    print_report(report, THRESHOLD, BOX_THRESHOLD)
    print(json.dumps({"steps": a.steps, "batch": a.batch, "seed": a.seed, "train_frames": len(tx),
                      "val_frames": len(vx), "threshold": THRESHOLD, "box_threshold": BOX_THRESHOLD,
                      "params": n_params, "macs_800x448": macs(448, 800), "onnx_max_diff": max(diffs),
                      "onnxruntime_ms_per_frame": round(ort_ms, 1), "train_seconds": round(elapsed),
                      "val": report}), flush=True)


if __name__ == "__main__":
    main()
