"""Variable-length sequence helpers: padding and ``PackedSequence`` packing."""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

import jitorch as J

from ..._tensor import Tensor

__all__ = [
    "PackedSequence",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpack_sequence",
    "unpad_sequence",
]


def pad_sequence(sequences: Sequence[Tensor] | Tensor, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shape (L_i, *) into (max L, B, *) (or (B, max L, *)), padding with ``padding_value``.

    >>> import jitorch
    >>> from jitorch.nn.utils.rnn import pad_sequence
    >>> pad_sequence([jitorch.ones(2), jitorch.ones(1)], batch_first=True).tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    from .. import functional as F
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    max_len = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = max_len - s.shape[0]
        widths = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(F.pad(s, widths, value=padding_value) if extra else s)
    return J.stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths: Tensor, batch_first: bool = False) -> list[Tensor]:
    """The inverse of ``pad_sequence``: a list of the unpadded sequences."""
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [seq.narrow(0, 0, int(n)) for seq, n in zip(padded_sequences.unbind(0), lengths.tolist())]


class PackedSequence(NamedTuple):
    """Sequences of different lengths packed time step by time step.

    ``data`` holds, for each time step t, the entries of the ``batch_sizes[t]`` sequences
    still running (sorted by decreasing length); ``sorted_indices`` maps that order back
    to the caller's batch order (None when the input was already sorted).
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, *args, **kwargs) -> PackedSequence:
        return self._replace(data=self.data.to(*args, **kwargs))

    def cpu(self) -> PackedSequence:
        return self

    def float(self) -> PackedSequence:
        return self._replace(data=self.data.float())

    def double(self) -> PackedSequence:
        return self._replace(data=self.data.double())

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def _invert_permutation(perm: Tensor | None) -> Tensor | None:
    if perm is None:
        return None
    p = perm._host()
    inv = np.empty_like(p)
    inv[p] = np.arange(perm.numel())
    return J.from_numpy(inv).to(perm.device)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded (T, B, *) (or (B, T, *)) batch whose sequences have the given ``lengths``."""
    lens = np.asarray(lengths.tolist() if isinstance(lengths, Tensor) else list(lengths), dtype=np.int64)
    batch_dim = 0 if batch_first else 1
    sorted_indices = None
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
    else:
        order = np.argsort(-lens, kind="stable")
        sorted_indices = J.from_numpy(order).to(input.device)  # like torch: on the data's device
        input = input.index_select(batch_dim, sorted_indices)
        lens = lens[order]
    if lens.size and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if batch_first:
        input = input.transpose(0, 1)
    steps = int(lens[0]) if lens.size else 0
    batch_sizes = [int((lens > t).sum()) for t in range(steps)]
    data = J.cat([input.select(0, t).narrow(0, 0, n) for t, n in enumerate(batch_sizes)])
    return PackedSequence(data, J.tensor(batch_sizes, dtype=J.int64), sorted_indices,
                          _invert_permutation(sorted_indices))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo ``pack_padded_sequence``: the padded batch and the lengths (in the caller's order)."""
    sizes = sequence.batch_sizes.tolist()
    steps = len(sizes)
    if total_length is not None and total_length < steps:
        raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                         f"but got total_length={total_length} and max sequence length being {steps}")
    batch = sizes[0] if sizes else 0
    lengths = np.array([sum(1 for n in sizes if n > b) for b in range(batch)], dtype=np.int64)
    per_seq = []
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    for b in range(batch):
        rows = [sequence.data.select(0, int(offsets[t] + b)) for t in range(int(lengths[b]))]
        per_seq.append(J.stack(rows))
    padded = pad_sequence(per_seq, batch_first=batch_first, padding_value=padding_value)
    if total_length is not None and total_length > steps:
        time_dim = 1 if batch_first else 0
        from .. import functional as F
        widths = [0, 0] * (padded.ndim - 1 - time_dim) + [0, total_length - steps]
        padded = F.pad(padded, widths, value=padding_value)
    lens_t = J.from_numpy(lengths)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(0 if batch_first else 1, sequence.unsorted_indices)
        lens_t = lens_t.index_select(0, sequence.unsorted_indices.cpu())  # lengths stay on the CPU, as in torch
    return padded, lens_t


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) tensors."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """Undo ``pack_sequence``."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
