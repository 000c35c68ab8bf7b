"""Renders the plate detector's training and validation frames (frames.py) with fixed seeds.

    python detector_dataset.py OUT_DIR --train N --val M --seed S [--workers W]

Chunk k of a set is rendered with `random.Random(f"{seed}-{set}-{k}")`, so the data do not depend
on the number of workers. Training frames are TRAIN_W x TRAIN_H (the trainer crops them), the
validation frames the camera's size, VAL_W x VAL_H. Writes OUT_DIR/{train,val}.npz: images
uint8 N x H x W x 3 (RGB), labels uint8 N x H/4 x W/4 (frames.label_map), quads float32
N x MAX_PLATES x 4 x 2 (the characters' corners in pixels) and counts (plates per frame).
"""
import argparse
import random
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

import frames

CHUNK = 100
TRAIN_W, TRAIN_H = 352, 256
VAL_W, VAL_H = 800, 448
MAX_PLATES = 4


def chunk(args):
    seed, name, k, n, w, h = args
    rng = random.Random(f"{seed}-{name}-{k}")
    imgs, labels = [], []
    quads = np.zeros((n, MAX_PLATES, 4, 2), np.float32)
    counts = np.zeros(n, np.int32)
    for i in range(n):
        a, qs = frames.frame(rng, w, h)
        imgs.append(a)
        labels.append(frames.label_map(qs, w, h))
        counts[i] = len(qs)
        for j, q in enumerate(qs):
            quads[i, j] = q
    return np.stack(imgs), np.stack(labels), quads, counts


def build(out, name, n, seed, workers, w, h):
    jobs = [(seed, name, k, min(CHUNK, n - k * CHUNK), w, h) for k in range((n + CHUNK - 1) // CHUNK)]
    with Pool(workers) as pool:
        parts = pool.map(chunk, jobs)
    np.savez(out / f"{name}.npz",
             images=np.concatenate([p[0] for p in parts]),
             labels=np.concatenate([p[1] for p in parts]),
             quads=np.concatenate([p[2] for p in parts]),
             counts=np.concatenate([p[3] for p in parts]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    for name, n, w, h in (("val", a.val, VAL_W, VAL_H), ("train", a.train, TRAIN_W, TRAIN_H)):
        build(a.out, name, n, a.seed, a.workers, w, h)
        print(f"{name}: {n} frames {w}x{h} rendered ({time.time() - t:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
