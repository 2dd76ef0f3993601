"""Train a small MLP classifier on a synthetic three-arm spiral, with numpy only.

The demo task for ailabber: it behaves like a real training job (epochs, progress on
stdout, a log file, metrics and a model file as results) yet needs no GPU, no download and
only a few seconds of CPU, so every step of the pipeline can be tried in a minute.
The data comes from a fixed seed, so two runs with the same ``--seed`` print the same numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

LOG_FILE = Path("logs") / "train.log"
OUTPUT_DIR = Path("output")
TURNS = 1.5   # how far each arm winds; more turns make the classes harder to separate


class Report:
    """Every line goes to stdout (flushed, so it shows up live in the job's output) and to
    ``logs/train.log`` (collected as a log by the task config)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def record_metrics(**values: float) -> None:
    """One JSON line per epoch into ``$AILABBER_METRICS`` (set by ailabber), which
    ``ailabber metrics ID`` charts while the task runs."""
    path = os.environ.get("AILABBER_METRICS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(values) + "\n")


def make_spirals(n: int, classes: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms in 2-D: not linearly separable, easy for an MLP."""
    per = n // classes
    xs, ys = [], []
    for k in range(classes):
        r = np.linspace(0.05, 1.0, per)
        theta = np.linspace(k * 2 * np.pi / classes, k * 2 * np.pi / classes + TURNS * 2 * np.pi, per)
        arm = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
        xs.append(arm + rng.normal(0.0, noise, arm.shape))
        ys.append(np.full(per, k))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


class MLP:
    """Two ReLU hidden layers and a softmax output, trained with Adam."""

    def __init__(self, sizes: list[int], rng: np.random.Generator) -> None:
        self.params: dict[str, np.ndarray] = {}
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            self.params[f"W{i}"] = (rng.normal(0.0, np.sqrt(2.0 / a), (a, b))).astype(np.float32)
            self.params[f"b{i}"] = np.zeros(b, dtype=np.float32)
        self.layers = len(sizes) - 1
        self._m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._t = 0

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        h = x
        for i in range(self.layers):
            h = h @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.layers - 1:
                h = np.maximum(h, 0.0)
            acts.append(h)
        return h, acts

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        logits, acts = self.forward(x)
        probs = softmax(logits)
        loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
        grad = probs
        grad[np.arange(len(y)), y] -= 1.0
        grad /= len(y)
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(self.layers)):
            grads[f"W{i}"] = acts[i].T @ grad
            grads[f"b{i}"] = grad.sum(axis=0)
            if i > 0:
                grad = (grad @ self.params[f"W{i}"].T) * (acts[i] > 0)
        return loss, grads

    def adam_step(self, grads: dict[str, np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self._t += 1
        for k, g in grads.items():
            self._m[k] = b1 * self._m[k] + (1 - b1) * g
            self._v[k] = b2 * self._v[k] + (1 - b2) * g * g
            m_hat = self._m[k] / (1 - b1 ** self._t)
            v_hat = self._v[k] / (1 - b2 ** self._t)
            self.params[k] -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        probs = softmax(self.forward(x)[0])
        loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
        return loss, float((probs.argmax(axis=1) == y).mean())


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def describe_gpu() -> str:
    """Only reports what the scheduler handed out; this demo always computes on the CPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return "no GPU assigned (CUDA_VISIBLE_DEVICES is not set); running on the CPU"
    if visible.strip() in ("", "-1"):
        return "no GPU assigned (CUDA_VISIBLE_DEVICES is empty); running on the CPU"
    return f"GPU(s) assigned: CUDA_VISIBLE_DEVICES={visible} (this demo still runs on the CPU)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="passes over the training set (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the data and the weights (default 0)")
    p.add_argument("--samples", type=int, default=24000, help="dataset size (default 24000)")
    p.add_argument("--hidden", type=int, default=128, help="units per hidden layer (default 128)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.samples < 30 or args.hidden < 1 or args.batch_size < 1:
        p.error("--epochs, --samples, --hidden and --batch-size must be positive (samples >= 30)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report(LOG_FILE)
    started = time.monotonic()
    report(f"ailabber example: spiral MLP, epochs={args.epochs} seed={args.seed} "
           f"python={sys.version.split()[0]} numpy={np.__version__}")
    report(describe_gpu())

    rng = np.random.default_rng(args.seed)
    x, y = make_spirals(args.samples, classes=3, noise=0.06, rng=rng)
    split = int(0.8 * len(y))
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    report(f"data: {len(y_train)} train / {len(y_test)} test samples, 2 features, 3 classes")

    model = MLP([2, args.hidden, args.hidden, 3], rng)
    train_loss = train_acc = test_loss = test_acc = float("nan")
    for epoch in range(1, args.epochs + 1):
        t0 = time.monotonic()
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            _, grads = model.loss_and_grads(x_train[idx], y_train[idx])
            model.adam_step(grads, args.lr)
        train_loss, train_acc = model.evaluate(x_train, y_train)
        test_loss, test_acc = model.evaluate(x_test, y_test)
        report(f"epoch {epoch:3d}/{args.epochs}  loss {train_loss:.4f}  acc {train_acc:.3f}  "
               f"test_loss {test_loss:.4f}  test_acc {test_acc:.3f}  ({time.monotonic() - t0:.2f}s)")
        record_metrics(step=epoch, loss=round(train_loss, 6), acc=round(train_acc, 6),
                       test_loss=round(test_loss, 6), test_acc=round(test_acc, 6))

    seconds = time.monotonic() - started
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(OUTPUT_DIR / "model.npz", **model.params)
    metrics = {
        "epochs": args.epochs,
        "seed": args.seed,
        "train_loss": round(train_loss, 6),
        "train_accuracy": round(train_acc, 6),
        "test_loss": round(test_loss, 6),
        "test_accuracy": round(test_acc, 6),
        "seconds": round(seconds, 3),
    }
    (OUTPUT_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    report(f"done in {seconds:.1f}s: test accuracy {test_acc:.3f}; "
           f"wrote {OUTPUT_DIR / 'metrics.json'} and {OUTPUT_DIR / 'model.npz'}")
    report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
