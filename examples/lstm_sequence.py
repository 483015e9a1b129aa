"""An LSTM learns the "adding problem" (Hochreiter & Schmidhuber, 1997) -- run by jitorch.

Each input is a sequence of (value, marker) pairs: values are uniform in [0, 1) and exactly
two positions carry marker 1. The target is the sum of the two marked values, so the network
must remember them across the sequence. Always guessing the mean sum (1.0) scores an MSE of
about 0.167; the LSTM should get below 0.01.

Run from the repository root:  python examples/lstm_sequence.py [--steps 1000] [--seq-len 20]
"""
from __future__ import annotations

import argparse
import time

import jitorch as torch
from jitorch import nn


def make_batch(batch_size: int, seq_len: int, generator=None):
    """(batch, seq_len, 2) inputs and (batch,) targets for the adding problem."""
    values = torch.rand(batch_size, seq_len, generator=generator)
    # two distinct marked positions per row: the first two of a random permutation
    scores = torch.rand(batch_size, seq_len, generator=generator)
    marked = scores.argsort(dim=1)[:, :2]
    markers = torch.zeros(batch_size, seq_len).scatter_(1, marked, 1.0)
    inputs = torch.stack([values, markers], dim=2)
    targets = (values * markers).sum(dim=1)
    return inputs, targets


class AddingLSTM(nn.Module):
    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=2, hidden_size=hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x):
        out, _ = self.lstm(x)  # out: (batch, seq, hidden); _ is (h_n, c_n)
        return self.head(out[:, -1]).squeeze(1)  # read the answer after the last step


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seq-len", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.01, help="target test MSE")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    model = AddingLSTM(args.hidden)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    # a fixed held-out set drawn from its own generator, so it never overlaps training batches
    test_x, test_y = make_batch(1000, args.seq_len, torch.Generator().manual_seed(1234))

    print(f"adding problem, sequence length {args.seq_len}: baseline MSE "
          f"{((test_y - 1.0) ** 2).mean().item():.3f} (always predicting 1.0)")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = make_batch(args.batch_size, args.seq_len)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # LSTMs like clipped gradients
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                test_mse = criterion(model(test_x), test_y).item()
            print(f"step {step:4d}  train MSE {loss.item():.4f}  test MSE {test_mse:.4f}  "
                  f"({time.perf_counter() - t0:.1f} s)")
    ok = test_mse < args.threshold
    print(f"final test MSE {test_mse:.4f} -- {'reached' if ok else 'did NOT reach'} "
          f"the target of {args.threshold} in {time.perf_counter() - t0:.1f} s")
    return {"test_mse": test_mse, "reached": ok}


if __name__ == "__main__":
    main()
