"""``einsum``: Einstein summation lowered onto views, sums and batched matmul.

Plan (what torch does without opt_einsum):
1. parse the equation (or the sublist form) and check it against the
   operands: subscript counts, ellipsis, sizes of repeated letters;
2. per operand, take the diagonal of letters repeated within it and sum away
   letters that no other operand and not the output use;
3. contract operands left to right: letters shared and still needed later
   are batch dims, shared and not needed are summed by one ``matmul`` over
   ``(batch, M, K) @ (batch, K, N)`` (BLAS), pairs with nothing to sum are a
   broadcast multiply;
4. sum what the output drops and permute into the output order.
Every step is an existing differentiable op, so gradients (and double
backward) come from their rules.
"""
from __future__ import annotations

import math
from itertools import pairwise

from .. import _dtype as D
from .._dispatch import _type_word
from .._tensor import Tensor
from . import reductions as R
from . import views as V
from .linalg import matmul

__all__ = ["einsum"]
TENSOR_METHODS: list = []

_ELL = "..."


# -- parsing --------------------------------------------------------------------------------------------
def _letter(k: int) -> str:
    if 0 <= k < 26:
        return chr(ord("a") + k)
    if 26 <= k < 52:
        return chr(ord("A") + k - 26)
    raise ValueError(f"einsum(): subscript in subscript list is not within the valid range [0, 52), got {k}")


def _sublist_term(sub) -> str:
    return "".join(_ELL if s is Ellipsis else _letter(int(s)) for s in sub)


def _from_sublists(args) -> tuple:
    """einsum(op0, sub0, op1, sub1, ..., [out]) -> (equation, operands)."""
    ops, terms = list(args[0::2]), [_sublist_term(s) for s in args[1::2]]
    out = None
    if len(ops) > len(terms):  # a trailing output sublist sits in an operand slot
        out = ops.pop()
        if isinstance(out, Tensor):
            raise ValueError("einsum(): must specify the equation string and at least one operand, or at least "
                             "one operand and its subscripts list")
        out = _sublist_term(out)
    eq = ",".join(terms) + ("" if out is None else "->" + out)
    return eq, ops


def _split_args(args) -> tuple:
    if len(args) < 2 and not (len(args) == 1 and isinstance(args[0], Tensor)):
        raise ValueError("einsum(): must specify the equation string and at least one operand, or at least one "
                         "operand and its subscripts list")
    if isinstance(args[0], Tensor):
        return _from_sublists(args)
    eq, ops = args[0], list(args[1:])
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = list(ops[0])
    for i, op in enumerate(ops):
        if not isinstance(op, Tensor):
            raise TypeError(f"einsum(): argument 'operands' must be tuple of Tensors, but found element of type "
                            f"{type(op).__name__} at pos {i}")
    return eq, ops


def _parse_term(eq: str, start: int, stop: int, operand: int | None) -> list:
    """Letters of ``eq[start:stop]`` with ``_ELL`` for an ellipsis; spaces are ignored."""
    out = []
    i = start
    while i < stop:
        ch = eq[i]
        if ch == " ":
            i += 1
        elif ch == ".":
            if _ELL in out:
                who = f"for operand {operand}" if operand is not None else "in the output"
                raise RuntimeError(f"einsum(): found '.' {who} for which an ellipsis was already found")
            if eq[i:i + 3] != _ELL or i + 3 > stop:
                who = f"for operand {operand}" if operand is not None else "in the output"
                raise RuntimeError(f"einsum(): found '.' {who} that is not part of any ellipsis")
            out.append(_ELL)
            i += 3
        elif ch.isascii() and ch.isalpha():
            out.append(ch)
            i += 1
        else:
            raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
    return out


def _parse(eq: str, n_ops: int) -> tuple:
    """(input terms, output term or None for implicit)."""
    arrow = eq.find("->")
    lhs_end = arrow if arrow >= 0 else len(eq)
    bounds = [-1] + [k for k in range(lhs_end) if eq[k] == ","] + [lhs_end]
    if len(bounds) - 1 > n_ops:
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    if len(bounds) - 1 < n_ops:
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    terms = [_parse_term(eq, lo + 1, hi, i) for i, (lo, hi) in enumerate(pairwise(bounds))]
    out = _parse_term(eq, arrow + 2, len(eq), None) if arrow >= 0 else None
    return terms, out


# -- shape checks: one size per letter, broadcastable ellipsis --------------------------------------------
def _bind_sizes(terms: list, ops: list) -> tuple:
    """Expand each term's ellipsis into ('...', k) labels; returns (labels per operand, size per label, ell ndim)."""
    ell_nd = 0
    for i, (term, op) in enumerate(zip(terms, ops)):
        k = len(term) - (1 if _ELL in term else 0)
        if _ELL not in term and k != op.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({k}) does not match the number "
                               f"of dimensions ({op.ndim}) for operand {i} and no ellipsis was given")
        if _ELL in term and k > op.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({k}) is more than the number "
                               f"of dimensions ({op.ndim}) for operand {i}")
        ell_nd = max(ell_nd, op.ndim - k)
    sizes: dict = {}
    labels = []
    for i, (term, op) in enumerate(zip(terms, ops)):
        lab = []
        for t in term:
            if t == _ELL:
                e = op.ndim - (len(term) - 1)
                lab.extend((_ELL, ell_nd - e + j) for j in range(e))
            else:
                lab.append(t)
        seen: dict = {}
        for axis, (l, s) in enumerate(zip(lab, op.shape)):
            if l in seen and seen[l] != s:
                raise RuntimeError(f"einsum(): subscript {l} is repeated for operand {i} but the sizes don't match, "
                                   f"{s} != {seen[l]}")
            seen[l] = s
            prev = sizes.get(l)
            if prev is not None and prev != s and prev != 1 and s != 1:
                if isinstance(l, tuple):
                    raise RuntimeError(f"einsum(): dimension {axis} covered by ellipsis in operand {i}has size {s} "
                                       f"which does not broadcast with previously seen ellipsis with size {prev} "
                                       "for the respective dimension")
                raise RuntimeError(f"einsum(): subscript {l} has size {s} for operand {i} which does not broadcast "
                                   f"with previously seen size {prev}")
            sizes[l] = s if prev is None or prev == 1 else prev
        labels.append(lab)
    return labels, sizes, ell_nd


def _output_labels(out_term, labels: list, ell_nd: int) -> list:
    ell = [(_ELL, j) for j in range(ell_nd)]
    if out_term is None:  # implicit: ellipsis, then letters used exactly once, alphabetically
        counts: dict = {}
        for lab in labels:
            for l in lab:
                if not isinstance(l, tuple):
                    counts[l] = counts.get(l, 0) + 1
        return ell + sorted(l for l, c in counts.items() if c == 1)
    used = {l for lab in labels for l in lab}
    out = []
    for l in out_term:
        if l == _ELL:
            out.extend(ell)
            continue
        if l in out:
            raise RuntimeError(f"einsum(): output subscript {l} appears more than once in the output")
        if l not in used:
            raise RuntimeError(f"einsum(): output subscript {l} does not appear in the equation for any input "
                               "operand")
        out.append(l)
    return out


# -- lowering --------------------------------------------------------------------------------------------------
def _take_diagonal(t: Tensor, lab: list) -> tuple:
    """Merge letters repeated within one operand (``'ii->i'``) into a single dim.

    A where-mask and a sum, rather than a strided diagonal view: the mask keeps
    off-diagonal infs/NaNs out and its gradient needs no diagonal_scatter.
    """
    import jitorch as J
    while True:
        dup = next((l for k, l in enumerate(lab) if l in lab[k + 1:]), None)
        if dup is None:
            return t, lab
        i = lab.index(dup)
        j = lab.index(dup, i + 1)
        n = t.shape[i]
        shape = [1] * t.ndim
        shape[i], shape[j] = n, n
        mask = J.eye(n, dtype=D.bool_, device=t.device).reshape(tuple(shape))
        zero = J.zeros((), dtype=t.dtype, device=t.device)
        t, lab = _sum_labels(J.where(mask, t, zero), lab[:j] + [None] + lab[j + 1:], {None})


def _sum_labels(t: Tensor, lab: list, drop: set) -> tuple:
    dims = tuple(k for k, l in enumerate(lab) if l in drop)
    if not dims:
        return t, lab
    s = R.sum(t, dims)
    if s.dtype is not t.dtype:  # integer sums widen to int64; einsum keeps the operand dtype
        s = s.to(t.dtype)
    return s, [l for l in lab if l not in drop]


def _arrange(t: Tensor, lab: list, order: list) -> Tensor:
    """``t`` (dims named by ``lab``) permuted into ``order``; letters it lacks become size-1 dims."""
    present = [l for l in order if l in lab]
    perm = [lab.index(l) for l in present]
    if perm != list(range(len(perm))):
        t = V.permute(t, tuple(perm))
    return _reshape(t, tuple(t.shape[present.index(l)] if l in lab else 1 for l in order))


def _expand_to(t: Tensor, lab: list, sizes: dict, which: set) -> Tensor:
    target = tuple(sizes[l] if l in which else s for l, s in zip(lab, t.shape))
    return t if target == tuple(t.shape) else V.expand(t, target)


def _contract(a: Tensor, la: list, b: Tensor, lb: list, needed: set, sizes: dict) -> tuple:
    """One pairwise step: batch letters kept, shared unneeded letters summed by matmul."""
    batch = [l for l in la if l in lb and l in needed]
    summed = [l for l in la if l in lb and l not in needed]
    a_only = [l for l in la if l not in lb]
    b_only = [l for l in lb if l not in la]
    a = _expand_to(a, la, sizes, set(batch) | set(summed))
    b = _expand_to(b, lb, sizes, set(batch) | set(summed))
    out_lab = batch + a_only + b_only
    if not summed:  # nothing to sum: a broadcast product
        return _arrange(a, la, out_lab) * _arrange(b, lb, out_lab), out_lab
    if a.dtype is D.bool_:
        raise NotImplementedError("\"bmm\" not implemented for 'Bool'")
    bs = [sizes[l] for l in batch]
    m, k, n = (math.prod(a.shape[la.index(l)] for l in a_only), math.prod(sizes[l] for l in summed),
               math.prod(b.shape[lb.index(l)] for l in b_only))
    lead = (math.prod(bs),) if batch else ()  # no batch letters: a plain 2-D product
    a3 = _reshape(_arrange(a, la, batch + a_only + summed), lead + (m, k))
    b3 = _reshape(_arrange(b, lb, batch + summed + b_only), lead + (k, n))
    r = matmul(a3, b3)
    shape = tuple(bs) + tuple(a.shape[la.index(l)] for l in a_only) + tuple(b.shape[lb.index(l)] for l in b_only)
    return _reshape(r, shape), out_lab


def _reshape(t: Tensor, shape: tuple) -> Tensor:
    return t if t._data.shape == shape else V.reshape(t, shape)


def _check_dtypes(ops: list) -> None:
    for op in ops[1:]:
        if op.dtype is not ops[0].dtype:
            raise RuntimeError(f"expected scalar type {_type_word(ops[0].dtype)} but found {_type_word(op.dtype)}")


def einsum(*args) -> Tensor:
    """Sum of products over the letters of an Einstein-notation ``equation``.

    >>> a, b = jitorch.ones(2, 3), jitorch.ones(3, 4)
    >>> jitorch.einsum("ij,jk->ik", a, b).shape
    jitorch.Size([2, 4])
    """
    eq, ops = _split_args(args)
    terms, out_term = _parse(eq, len(ops))
    _check_dtypes(ops)
    labels, sizes, ell_nd = _bind_sizes(terms, ops)
    out_lab = _output_labels(out_term, labels, ell_nd)
    out_set = set(out_lab)
    work = []
    for i, (t, lab) in enumerate(zip(ops, labels)):
        t, lab = _take_diagonal(t, lab)
        elsewhere = {l for k, other in enumerate(labels) if k != i for l in other}
        t, lab = _sum_labels(t, lab, {l for l in lab if l not in out_set and l not in elsewhere})
        work.append((t, lab))
    t, lab = work[0]
    for k in range(1, len(work)):
        needed = out_set | {l for _, rest in work[k + 1:] for l in rest}
        t, lab = _contract(t, lab, work[k][0], work[k][1], needed, sizes)
    t, lab = _sum_labels(t, lab, set(lab) - out_set)
    t = _expand_to(t, lab, sizes, set(lab))
    return _arrange(t, lab, out_lab)
