"""A small Transformer encoder learns to sort short sequences of digits -- run by jitorch.

Input: 8 random tokens from 0..9. Target, at every position: the token that belongs there in
sorted order. There is no decoder: each output position attends to the whole input, and the
sinusoidal positional encoding tells it which rank it must produce.

Run from the repository root:  python examples/transformer_sequence.py [--task reverse]
"""
from __future__ import annotations

import argparse
import math
import time

import jitorch as torch
from jitorch import nn


class PositionalEncoding(nn.Module):
    """The sine/cosine position signal of "Attention Is All You Need", added to the embeddings."""

    def __init__(self, d_model: int, max_len: int = 64) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)  # a buffer: saved in state_dict, never trained

    def forward(self, x):  # x: (batch, seq, d_model)
        return x + self.pe[: x.size(1)]


class SeqTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 128) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.out = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.pos(self.embed(tokens) * math.sqrt(self.d_model))
        return self.out(self.encoder(x))  # (batch, seq, vocab) logits


def make_batch(batch_size: int, seq_len: int, vocab: int, task: str, generator=None):
    x = torch.randint(0, vocab, (batch_size, seq_len), generator=generator)
    y = x.sort(dim=1).values if task == "sort" else x.flip(1)
    return x, y


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["sort", "reverse"], default="sort")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seq-len", type=int, default=8)
    p.add_argument("--vocab", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threshold", type=float, default=95.0, help="target per-token test accuracy (%%)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    model = SeqTransformer(args.vocab)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    # short linear warm-up, then cosine decay: the usual recipe for small transformers
    warmup = 50
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup)
        * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    test_x, test_y = make_batch(1000, args.seq_len, args.vocab, args.task,
                                torch.Generator().manual_seed(1234))

    def accuracy():
        model.eval()
        with torch.no_grad():
            pred = model(test_x).argmax(-1)
        model.train()
        per_token = (pred == test_y).float().mean().item() * 100
        whole = (pred == test_y).all(dim=1).float().mean().item() * 100
        return per_token, whole

    print(f"task: {args.task} {args.seq_len} tokens from 0..{args.vocab - 1}; "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = make_batch(args.batch_size, args.seq_len, args.vocab, args.task)
        logits = model(x)
        # CrossEntropyLoss wants (N, C): fold the sequence into the batch
        loss = criterion(logits.reshape(-1, args.vocab), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == args.steps:
            tok, seq = accuracy()
            print(f"step {step:4d}  loss {loss.item():.4f}  test accuracy {tok:5.1f}% per token, "
                  f"{seq:5.1f}% whole sequences  ({time.perf_counter() - t0:.1f} s)")
    ok = tok >= args.threshold
    print(f"final per-token accuracy {tok:.1f}% -- {'reached' if ok else 'did NOT reach'} "
          f"the target of {args.threshold:.0f}% in {time.perf_counter() - t0:.1f} s")
    return {"token_acc": tok, "seq_acc": seq, "reached": ok}


if __name__ == "__main__":
    main()
