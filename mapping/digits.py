"""The bundled demo model: an MLP trained on synthetic 8 x 8 digits.

Why synthetic: the repository has no offline dataset loader on main, and the demo must run
without a download. The task is still a real, learnable one: the ten digits of a 5 x 7
bitmap font drawn into an 8 x 8 image at a random position, with random stroke thickening,
contrast and Gaussian pixel noise, values in [0, 1]. A 64 -> 32 -> 10 MLP (ReLU) learns it
in seconds. Regenerate the bundle (mapping/data/) with ``python -m cimflow.mapping.digits``;
the seeds make it reproducible.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from cimflow.atomic import write_atomic

__all__ = ["glyphs", "make_digits", "train", "DATA", "bundle_paths"]

DATA = Path(__file__).parent / "data"

_FONT = [  # 5 x 7 bitmaps, one string per row, '#' = ink
    [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
    ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
    ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
    ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
    [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
    [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
]


def glyphs() -> np.ndarray:
    """The ten 7 x 5 digit bitmaps (float 0/1)."""
    return np.array([[[c == "#" for c in row] for row in g] for g in _FONT], np.float64)


def make_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 8 x 8 digit images (float32, [0, 1]) and their labels (int64)."""
    rng = np.random.default_rng(seed)
    g = glyphs()
    labels = rng.integers(0, 10, n)
    x = np.zeros((n, 8, 8))
    for i, d in enumerate(labels):
        img = g[d]
        if rng.random() < 0.3:  # a thicker stroke
            img = np.maximum(img, np.roll(img, 1, axis=1) * (np.arange(5) > 0))
        r0, c0 = rng.integers(0, 2), rng.integers(0, 4)
        x[i, r0:r0 + 7, c0:c0 + 5] = img * rng.uniform(0.6, 1.0)
    x += rng.normal(0, 0.2, x.shape)
    return np.clip(x, 0, 1).astype(np.float32), labels.astype(np.int64)


def train(seed: int = 0, n_train: int = 4000, epochs: int = 40):
    """The 64 -> 32 -> 10 MLP trained on ``make_digits(n_train, seed)``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x, y = make_digits(n_train, seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 100):
            b = perm[i:i + 100]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    return model.eval()


def bundle_paths(root: Path = DATA) -> dict[str, Path]:
    return {"model": root / "digits_mlp.pt2", "x": root / "digits_test_x.npy",
            "y": root / "digits_test_y.npy", "calibration": root / "digits_cal_x.npy"}


def write_bundle(root: Path = DATA, seed: int = 0) -> dict[str, Path]:
    """Train and write the model (ExportedProgram), 200 test inputs with labels and 100
    calibration inputs (from the training distribution, another seed than the test set)."""
    import torch

    model = train(seed)
    p = bundle_paths(root)
    root.mkdir(parents=True, exist_ok=True)
    xt, yt = make_digits(200, seed + 1000)
    xc, _ = make_digits(100, seed + 2000)
    batch = torch.export.Dim("batch")
    ep = torch.export.export(model, (torch.from_numpy(xt[:2]),),
                             dynamic_shapes={"input": {0: batch}})
    # every file through a temporary and a rename: a failed run never leaves half a bundle file
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    write_atomic(p["model"], buf.getvalue())
    for key, arr in (("x", xt), ("y", yt), ("calibration", xc)):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        write_atomic(p[key], buf.getvalue())
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description="regenerate the bundled digits MLP")
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = write_bundle(args.out, args.seed)
    import torch

    model = torch.export.load(p["model"]).module()
    acc = (model(torch.from_numpy(np.load(p["x"]))).argmax(1).numpy() == np.load(p["y"])).mean()
    print(f"wrote {args.out}: test accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
