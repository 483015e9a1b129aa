"""Train a small CNN on scikit-learn's 8x8 handwritten digits -- a PyTorch program run by jitorch.

Run from the repository root:

    python examples/digits_cnn.py                 # 8 epochs, reaches ~98% test accuracy
    python examples/digits_cnn.py --epochs 3 --compile --plot curves.png

Needs scikit-learn (`pip install -e '.[digits]'`); tqdm and matplotlib are used when installed
(`.[progress]`, `.[plot]`). Apart from the import line and the dataset, this is the code you
would write for PyTorch + torchvision.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jitorch as torch
import jitorch.nn.functional as F
from jitorch import nn, optim
from jitorch.utils.data import DataLoader, Subset
from jitorch.vision import datasets

try:  # optional: a progress bar per epoch
    from tqdm import tqdm
except ImportError:
    tqdm = None


class DigitsCNN(nn.Module):
    """Two conv blocks (8x8 -> 4x4 -> 2x2) and a two-layer classifier head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),                      # 16 x 4 x 4
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),                      # 32 x 2 x 2
        )
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(self.dropout(x)))
        return self.fc2(x)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="wrap the model with jitorch.compile")
    p.add_argument("--plot", default="digits_training.png",
                   help="PNG file for the loss/accuracy curves ('' to skip)")
    p.add_argument("--save", default=None,
                   help="where to save the state_dict (default: a temporary file)")
    p.add_argument("--subset", type=int, default=None,
                   help="train on only the first N training images (quick runs, tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, fewer prints")
    return p.parse_args(argv)


def evaluate(model, loader) -> float:
    """Accuracy in percent, with dropout off and batch-norm using its running statistics."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 100.0 * correct / total


def train_one_epoch(model, loader, criterion, optimizer, epoch: int, quiet: bool):
    model.train()
    running_loss, correct, seen = 0.0, 0, 0
    batches = loader
    if tqdm is not None and not quiet:
        batches = tqdm(loader, desc=f"epoch {epoch}", leave=False, unit="batch")
    for images, labels in batches:
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()

        running_loss += loss.item() * labels.size(0)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += labels.size(0)
        if batches is not loader:
            batches.set_postfix(loss=f"{running_loss / seen:.3f}")
    return running_loss / seen, 100.0 * correct / seen


def plot_curves(history: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    epochs = range(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, history["loss"], marker="o")
    ax_loss.set(title="train loss", xlabel="epoch")
    ax_acc.plot(epochs, history["train_acc"], marker="o", label="train")
    ax_acc.plot(epochs, history["test_acc"], marker="o", label="test")
    ax_acc.set(title="accuracy (%)", xlabel="epoch")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs on the x axis
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    say = (lambda *a: None) if args.quiet else print

    train_set = datasets.Digits(train=True)
    test_set = datasets.Digits(train=False)
    if args.subset is not None:
        train_set = Subset(train_set, range(min(args.subset, len(train_set))))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    model = DigitsCNN()
    # A compiled module shares its parameters with the original, so the optimizer and
    # state_dict see the same tensors either way.
    net = torch.compile(model) if args.compile else model
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=max(1, args.epochs // 2), gamma=0.3)

    say(f"{len(train_set)} training / {len(test_set)} test images, "
        f"{sum(p.numel() for p in model.parameters())} parameters"
        + (", compiled" if args.compile else ""))
    history = {"loss": [], "train_acc": [], "test_acc": []}
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss, train_acc = train_one_epoch(net, train_loader, criterion, optimizer, epoch, args.quiet)
        test_acc = evaluate(net, test_loader)
        scheduler.step()
        for key, value in zip(history, (loss, train_acc, test_acc)):
            history[key].append(value)
        say(f"epoch {epoch:2d}  loss {loss:.4f}  train acc {train_acc:5.1f}%  "
            f"test acc {test_acc:5.1f}%  lr {scheduler.get_last_lr()[0]:.2e}  "
            f"({time.perf_counter() - t0:.1f} s)")
    elapsed = time.perf_counter() - t0

    # Save, reload into a fresh model, and check that it scores the same.
    with tempfile.TemporaryDirectory() as tmp:
        path = args.save or os.path.join(tmp, "digits_cnn.pt")
        torch.save(model.state_dict(), path)
        restored = DigitsCNN()
        restored.load_state_dict(torch.load(path))
        reloaded_acc = evaluate(restored, test_loader)
    say(f"saved and reloaded the state_dict{' to ' + args.save if args.save else ''}: "
        f"test acc {reloaded_acc:.1f}%")
    if abs(reloaded_acc - history["test_acc"][-1]) > 1e-9:
        print("WARNING: the reloaded model scores differently from the trained one", file=sys.stderr)

    if args.plot:
        plot_curves(history, args.plot)
    say(f"final test accuracy {history['test_acc'][-1]:.1f}% in {elapsed:.1f} s")
    return {"history": history, "test_acc": history["test_acc"][-1],
            "reloaded_acc": reloaded_acc, "seconds": elapsed}


if __name__ == "__main__":
    main()
