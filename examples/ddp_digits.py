"""Train the digits CNN data-parallel: DistributedDataParallel + DistributedSampler over MPI.

Run from the repository root (needs `pip install -e '.[distributed,digits]'`):

    mpiexec -n 2 python examples/ddp_digits.py                # 2 processes on this machine
    mpiexec -n 2 python examples/ddp_digits.py --epochs 3 --compile
    mpiexec -f hostfile -n 4 python examples/ddp_digits.py    # across hosts (MPICH hostfile)

Every process holds a replica of the model and trains on its own share of each epoch
(DistributedSampler); DDP averages the gradients during backward, so all replicas take the
same optimizer steps. Rank 0 prints the progress and the test accuracy. Apart from the import
line and the dataset, this is the code you would write for PyTorch.
"""
from __future__ import annotations

import argparse
import time

# examples/digits_cnn.py: the script's own folder is on sys.path
from digits_cnn import DigitsCNN

import jitorch as torch
import jitorch.distributed as dist
from jitorch import nn, optim
from jitorch.nn.parallel import DistributedDataParallel as DDP
from jitorch.utils.data import DataLoader, Subset
from jitorch.utils.data.distributed import DistributedSampler
from jitorch.vision import datasets


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16, help="per process; the global batch is N times this")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="wrap the model with jitorch.compile before DDP")
    p.add_argument("--subset", type=int, default=None, help="train on only the first N training images")
    p.add_argument("--save", default=None, help="rank 0 saves the trained state_dict here")
    return p.parse_args(argv)


def average(value: float) -> float:
    """The mean of a number over all ranks."""
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    return t.item()


def evaluate(model, loader) -> float:
    """Accuracy in percent over the whole test set: each rank scores its share, the counts are summed."""
    model.eval()
    counts = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for images, labels in loader:
            counts[0] += (model(images).argmax(1) == labels).sum().item()
            counts[1] += labels.size(0)
    dist.all_reduce(counts)
    return 100.0 * counts[0].item() / counts[1].item()


def main(argv=None) -> float:
    args = parse_args(argv)
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    say = print if rank == 0 else (lambda *a, **k: None)
    torch.manual_seed(args.seed)

    train_set = datasets.Digits(train=True)
    test_set = datasets.Digits(train=False)
    if args.subset is not None:
        train_set = Subset(train_set, range(min(args.subset, len(train_set))))
    train_sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=train_sampler)
    # the test set is split as well (without shuffling); a few samples repeat if it does not divide evenly
    test_loader = DataLoader(test_set, batch_size=256, sampler=DistributedSampler(test_set, shuffle=False))

    model = DigitsCNN()
    net = DDP(torch.compile(model) if args.compile else model)  # DDP starts every rank from rank 0's weights
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(net.parameters(), lr=args.lr)
    say(f"{world} processes, {len(train_set)} training images ({len(train_sampler)} per process), "
        f"global batch {args.batch_size * world}")

    t0 = time.perf_counter()
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        train_sampler.set_epoch(epoch)  # a different shuffle every epoch, the same on all ranks
        net.train()
        total, seen = 0.0, 0
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(net(images), labels)
            loss.backward()  # gradients are averaged over the ranks during this call
            optimizer.step()
            total += loss.item() * labels.size(0)
            seen += labels.size(0)
        train_loss = average(total / max(seen, 1))
        acc = evaluate(net, test_loader)
        say(f"epoch {epoch:2d}  loss {train_loss:.4f}  test acc {acc:5.1f}%  ({time.perf_counter() - t0:.1f} s)")

    if args.save and rank == 0:
        torch.save(model.state_dict(), args.save)
        say(f"saved the state_dict to {args.save}")
    say(f"final test accuracy {acc:.1f}% in {time.perf_counter() - t0:.1f} s")
    dist.destroy_process_group()
    return acc


if __name__ == "__main__":
    main()
