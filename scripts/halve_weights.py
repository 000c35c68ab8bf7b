"""Stores an ONNX model's weights as float16, computed as float32 as before.

Usage: halve_weights.py IN.onnx OUT.onnx

Every float32 `Constant` of at least MIN_ELEMENTS values (convolution and matrix weights) is
stored as float16 and followed by a `Cast` back to float32 under its old name, so the graph
computes in float32 exactly as before, on weights rounded to float16 (each within 2^-11 of
itself, or within 6e-8 below float16's normal range). The runtime (tract) folds the casts when it optimises the model, so memory
and speed in use are unchanged; the file is about half. Per-channel tensors (biases, batch-norm
statistics, scales) stay float32: they are small, and a batch-norm variance can lie below
float16's normal range.

Deterministic: the same input and pinned packages (scripts/halve_weights.requirements.txt) give
the same bytes, which scripts/fetch-models checks against its pinned SHA-256.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024


def halve(model: onnx.ModelProto) -> int:
    """Rewrites `model` in place; returns how many tensors now have float16 storage."""
    nodes, halved = [], 0
    for node in model.graph.node:
        value = node.attribute[0].t if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if value is not None and node.attribute[0].name == "value" and value.data_type == TensorProto.FLOAT:
            weights = numpy_helper.to_array(value)
            if weights.size >= MIN_ELEMENTS:
                half = weights.astype(np.float16)
                if not np.isfinite(half).all():
                    raise SystemExit(f"{node.output[0]}: a weight is outside float16's range")
                name = node.output[0]
                value.CopyFrom(numpy_helper.from_array(half, name=value.name))
                node.output[0] = name + ".f16"
                nodes += [node, helper.make_node("Cast", [name + ".f16"], [name], to=TensorProto.FLOAT, name=name + ".to_f32")]
                halved += 1
                continue
        nodes.append(node)
    if model.graph.initializer:
        raise SystemExit("initializers are not handled (the PP-OCR exports hold their weights in Constant nodes)")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return halved


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    halved = halve(model)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"halve_weights: {halved} weight tensors stored as float16 in {dst.rsplit('/', 1)[-1]}")


if __name__ == "__main__":
    main()
