"""Cuts PP-OCR's text reader down to the classes a plate is read with.

Usage: cut_reader_classes.py IN.onnx IN_KEYS.txt OUT.onnx OUT_KEYS.txt

PP-OCRv4's reader ends in one linear layer over 6,625 classes (the CTC blank, the 6,623
characters of its list, a space) and a softmax over them. The recognizer reads only plate
characters: it sums the classes into the blank, the 36 characters 0-9 A-Z (in any case and in
their full-width forms) and one separator (a space, a dash, a dot: every other symbol). Kept
here: the blank, every character of the list that is printable ASCII or its full-width form
(U+FF01-U+FF5E) or the middle dot, and the space; the columns of every other class (Chinese
characters and other scripts) are cut from the layer's weights and bias, and OUT_KEYS.txt lists
the kept characters in the order of the columns kept. The softmax then shares the probability
only among what a plate can hold: where the reader hesitated between a plate character and a
character of another script, the plate character now stands against the blank alone
(measured in docs/recognizer.md, "PP-OCR's reader cut to plate classes"). The layer shrinks
from 120 x 6,625 weights to 120 x 179, and the file by 1.5 MB.

Deterministic: the same input and pinned packages (scripts/halve_weights.requirements.txt) give
the same bytes, which scripts/fetch-models checks against its pinned SHA-256.
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper


def kept(c: str) -> bool:
    """Whether the reader's class for the character `c` is kept."""
    if len(c) != 1:
        return False
    o = ord(c)
    return 0x20 <= o < 0x7F or 0xFF01 <= o <= 0xFF5E or o == 0xB7


def constant_of(producers: dict[str, onnx.NodeProto], name: str) -> onnx.NodeProto:
    """The `Constant` node holding tensor `name`, through a `Cast` (scripts/halve_weights.py);
    `producers` maps each tensor to the node giving it."""
    node = producers[name]
    if node.op_type == "Cast":
        node = producers[node.input[0]]
    if node.op_type != "Constant":
        raise SystemExit(f"{name}: not a constant ({node.op_type})")
    return node


def cut(model: onnx.ModelProto, columns: list[int]) -> None:
    """Keeps `columns` of the `MatMul` + `Add` before the output's `Softmax`, in place."""
    producers = {o: n for n in model.graph.node for o in n.output}
    softmax = producers[model.graph.output[0].name]
    if softmax.op_type != "Softmax":
        raise SystemExit(f"expected a Softmax giving the model's output, not {softmax.op_type}")
    add = producers[softmax.input[0]]
    matmul = producers[add.input[0]]
    if add.op_type != "Add" or matmul.op_type != "MatMul":
        raise SystemExit("expected MatMul + Add before the Softmax")
    for name, axis in ((matmul.input[1], 1), (add.input[1], 0)):
        value = [a for a in constant_of(producers, name).attribute if a.name == "value"][0]
        weights = numpy_helper.to_array(value.t)
        value.t.CopyFrom(numpy_helper.from_array(np.take(weights, columns, axis=axis), value.t.name))
    model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value = len(columns)


def main() -> None:
    src, src_keys, dst, dst_keys = sys.argv[1:5]
    model = onnx.load(src)
    lines = open(src_keys, encoding="utf-8").read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    classes = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if classes != len(lines) + 2:
        raise SystemExit(f"{classes} classes, but {len(lines)} characters + blank + space")
    keep = [i for i, c in enumerate(lines) if kept(c)]
    # Column 0 is the blank, column i + 1 the list's line i, the last column the space.
    columns = [0] + [i + 1 for i in keep] + [len(lines) + 1]
    cut(model, columns)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    with open(dst_keys, "w", encoding="utf-8") as out:
        out.write("".join(lines[i] + "\n" for i in keep))
    print(f"cut_reader_classes: {classes} classes cut to {len(columns)} in {dst.rsplit('/', 1)[-1]}")


if __name__ == "__main__":
    main()
