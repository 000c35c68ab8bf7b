"""Renders the training and validation sets (render.py) in chunks with fixed seeds.

    python dataset.py OUT_DIR --train N --val M --seed S [--workers W]

Chunk k of a set is rendered with `random.Random(f"{seed}-{set}-{k}")`, so the data do not depend
on the number of workers. Writes OUT_DIR/{train,val}.npz (images uint8 N x H x W, labels).
"""
import argparse
import random
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

import render

CHUNK = 1000


def chunk(args):
    seed, name, k, n = args
    rng = random.Random(f"{seed}-{name}-{k}")
    imgs, labels = [], []
    for _ in range(n):
        a, lab = render.sample(rng)
        imgs.append(a)
        labels.append(lab)
    return np.stack(imgs), labels


def build(out, name, n, seed, workers):
    jobs = [(seed, name, k, min(CHUNK, n - k * CHUNK)) for k in range((n + CHUNK - 1) // CHUNK)]
    with Pool(workers) as pool:
        parts = pool.map(chunk, jobs)
    imgs = np.concatenate([p[0] for p in parts])
    labels = np.array([lab for p in parts for lab in p[1]])
    np.savez(out / f"{name}.npz", images=imgs, labels=labels)
    return len(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=80000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    for name, n in (("val", a.val), ("train", a.train)):
        build(a.out, name, n, a.seed, a.workers)
        print(f"{name}: {n} samples rendered ({time.time() - t:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
