"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells, as in ``torch.nn``.

Parameter names, shapes, registration order and initialisation are torch's
(``weight_ih_l{k}[_reverse]``, ``weight_hh_l...``, ``bias_ih_l...``,
``bias_hh_l...``; all ``U(-1/sqrt(H), 1/sqrt(H))``), so state dicts load in
either direction.  Each layer and direction costs one input-projection matmul
for all timesteps plus one recurrence primitive (``ops.rnn_ops``) that runs
the time loop as one matmul and one fused gate kernel per step.
"""
from __future__ import annotations

import math
import numbers
import warnings

import jitorch as J

from .._tensor import Tensor
from ..ops import rnn_ops as R
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _project(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w^T + b`` over the last dim, as one 2-D GEMM for every leading index at once."""
    lead = tuple(x.shape[:-1])
    return F.linear(x.reshape(-1, x.shape[-1]), w, b).reshape(lead + (w.shape[0],))


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU`` (torch's ``nn.RNNBase``)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=2)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size:
            raise NotImplementedError("LSTM proj_size is not supported by jitorch")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_dir = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        dt = {"dtype": dtype} if dtype is not None else {}
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for d in range(num_dir):
                in_sz = input_size if layer == 0 else hidden_size * num_dir
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names = ["weight_ih" + sfx, "weight_hh" + sfx]
                shapes = [(gate, in_sz), (gate, hidden_size)]
                if bias:
                    names += ["bias_ih" + sfx, "bias_hh" + sfx]
                    shapes += [(gate,), (gate,)]
                for name, shape in zip(names, shapes):
                    setattr(self, name, Parameter(J.empty(shape, **dt)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """A no-op kept for API compatibility (there is no cuDNN weight buffer to compact)."""

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward helpers --------------------------------------------------------------------------------
    def _layer_params(self, layer: int, d: int):
        names = self._all_weights[layer * (2 if self.bidirectional else 1) + d]
        w_ih, w_hh = getattr(self, names[0]), getattr(self, names[1])
        b_ih = getattr(self, names[2]) if self.bias else None
        b_hh = getattr(self, names[3]) if self.bias else None
        return w_ih, w_hh, b_ih, b_hh

    def _prepare(self, input: Tensor, hx, name: str):
        """Time-major batched input, whether it was unbatched, and the expected hidden shape."""
        if input.ndim not in (2, 3):
            tail = " tensor instead" if name == "RNN" else " instead"
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D{tail}")
        batched = input.ndim == 3
        if not batched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{x.shape[-1]}")
        expected = (self.num_layers * (2 if self.bidirectional else 1), x.shape[1], self.hidden_size)
        return x, batched, expected

    def _initial(self, h, batched: bool, expected, label: str = "hidden") -> Tensor:
        if h is None:
            return None
        if not batched:
            h = h.unsqueeze(1)
        if tuple(h.shape) != expected:
            raise RuntimeError(f"Expected {label} size {expected}, got {list(h.shape)}")
        return h

    def _run(self, x: Tensor, h0: Tensor | None, c0: Tensor | None):
        """All layers and directions; returns (output (T, N, D*H), [h_n per layer-dir], [c_n ...])."""
        num_dir = 2 if self.bidirectional else 1
        t, n = x.shape[0], x.shape[1]
        hns, cns = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(num_dir):
                k = layer * num_dir + d
                w_ih, w_hh, b_ih, b_hh = self._layer_params(layer, d)
                zeros = None
                if h0 is None or (self.mode == "LSTM" and c0 is None):
                    zeros = J.zeros((n, self.hidden_size), dtype=x.dtype, device=x.device)
                h_init = h0.select(0, k) if h0 is not None else zeros
                rev = d == 1
                if self.mode == "LSTM":
                    b = b_ih + b_hh if b_ih is not None else None
                    c_init = c0.select(0, k) if c0 is not None else zeros
                    hs, cn = R.lstm_sequence(_project(x, w_ih, b), w_hh, h_init, c_init, rev)
                    cns.append(cn)
                elif self.mode == "GRU":
                    hs = R.gru_sequence(_project(x, w_ih, b_ih), w_hh, b_hh, h_init, rev)
                else:
                    b = b_ih + b_hh if b_ih is not None else None
                    act = "tanh" if self.mode == "RNN_TANH" else "relu"
                    hs = R.rnn_sequence(_project(x, w_ih, b), w_hh, h_init, rev, act)
                hns.append(hs.select(0, 0 if rev else t - 1) if t else h_init)
                outs.append(hs)
            x = outs[0] if num_dir == 1 else J.cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                from .functional import dropout
                x = dropout(x, self.dropout, True)
        return x, hns, cns

    def _finish(self, out: Tensor, states: list, batched: bool):
        if not batched:
            return out.squeeze(1), [s.squeeze(1) for s in states]
        return (out.transpose(0, 1) if self.batch_first else out), states


class RNN(RNNBase):
    """Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act ``tanh`` or ``relu``.

    ``forward(input, hx=None)`` returns ``(output, h_n)``.
    """

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)

    def forward(self, input: Tensor, hx: Tensor | None = None):
        x, batched, expected = self._prepare(input, hx, "RNN")
        if hx is not None and hx.ndim != (3 if batched else 2):
            raise RuntimeError(f"For {'batched 3' if batched else 'unbatched 2'}-D input, hx should also be "
                               f"{3 if batched else 2}-D but got {hx.ndim}-D tensor")
        h0 = self._initial(hx, batched, expected)
        out, hns, _ = self._run(x, h0, None)
        out, (hn,) = self._finish(out, [J.stack(hns, 0)], batched)
        return out, hn


class GRU(RNNBase):
    """Gated recurrent unit (gates ``[r, z, n]``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

    ``forward(input, hx=None)`` returns ``(output, h_n)``.
    """

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input: Tensor, hx: Tensor | None = None):
        x, batched, expected = self._prepare(input, hx, "GRU")
        if hx is not None and hx.ndim != (3 if batched else 2):
            raise RuntimeError(f"For {'batched 3' if batched else 'unbatched 2'}-D input, hx should also be "
                               f"{3 if batched else 2}-D but got {hx.ndim}-D tensor")
        h0 = self._initial(hx, batched, expected)
        out, hns, _ = self._run(x, h0, None)
        out, (hn,) = self._finish(out, [J.stack(hns, 0)], batched)
        return out, hn


class LSTM(RNNBase):
    """Long short-term memory (gates ``[i, f, g, o]``), as ``torch.nn.LSTM`` without ``proj_size``.

    ``forward(input, (h0, c0)=None)`` returns ``(output, (h_n, c_n))``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input: Tensor, hx=None):
        x, batched, expected = self._prepare(input, hx, "LSTM")
        h0 = c0 = None
        if hx is not None:
            h, c = hx
            want = 3 if batched else 2
            if h.ndim != want or c.ndim != want:
                raise RuntimeError(f"For {'batched 3' if batched else 'unbatched 2'}-D input, hx and cx should "
                                   f"also be {want}-D but got ({h.ndim}-D, {c.ndim}-D) tensors")
            h0 = self._initial(h, batched, expected, "hidden[0]")
            c0 = self._initial(c, batched, expected, "hidden[1]")
        out, hns, cns = self._run(x, h0, c0)
        out, (hn, cn) = self._finish(out, [J.stack(hns, 0), J.stack(cns, 0)], batched)
        return out, (hn, cn)


# -- cells ----------------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Shared parameters of the cells: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dt = {"dtype": dtype} if dtype is not None else {}
        self.weight_ih = Parameter(J.empty((num_chunks * hidden_size, input_size), **dt))
        self.weight_hh = Parameter(J.empty((num_chunks * hidden_size, hidden_size), **dt))
        if bias:
            self.bias_ih = Parameter(J.empty(num_chunks * hidden_size, **dt))
            self.bias_hh = Parameter(J.empty(num_chunks * hidden_size, **dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prepare(self, input: Tensor, hx, name: str):
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if hx is not None and any(h.ndim not in (1, 2) for h in (hx if isinstance(hx, tuple) else (hx,))):
            raise ValueError(f"{name}: Expected hidden to be 1D or 2D, got "
                             f"{(hx[0] if isinstance(hx, tuple) else hx).ndim}D instead")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}")
        return x, batched

    def _state(self, h, x, batched):
        if h is None:
            return J.zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=x.device)
        h = h if batched else h.unsqueeze(0)
        if tuple(h.shape) != (x.shape[0], self.hidden_size):
            raise RuntimeError(f"Input batch size {x.shape[0]} doesn't match hidden0 batch size {h.shape[0]}"
                               if h.shape[0] != x.shape[0] else
                               f"hidden0 has inconsistent hidden_size: got {h.shape[1]}, expected "
                               f"{self.hidden_size}")
        return h


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._prepare(input, hx, "RNNCell")
        h = self._state(hx, x, batched)
        b = self.bias_ih + self.bias_hh if self.bias else None
        hs = R.rnn_sequence(_project(x, self.weight_ih, b).unsqueeze(0), self.weight_hh, h, False,
                            self.nonlinearity)
        out = hs.select(0, 0)
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``forward(input, (h, c)=None)`` returns ``(h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx=None):
        x, batched = self._prepare(input, hx, "LSTMCell")
        h, c = (None, None) if hx is None else hx
        h, c = self._state(h, x, batched), self._state(c, x, batched)
        b = self.bias_ih + self.bias_hh if self.bias else None
        hs, cn = R.lstm_sequence(_project(x, self.weight_ih, b).unsqueeze(0), self.weight_hh, h, c, False)
        hn = hs.select(0, 0)
        return (hn, cn) if batched else (hn.squeeze(0), cn.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step; ``forward(input, h=None)`` returns ``h'``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._prepare(input, hx, "GRUCell")
        h = self._state(hx, x, batched)
        hs = R.gru_sequence(_project(x, self.weight_ih, self.bias_ih).unsqueeze(0), self.weight_hh, self.bias_hh,
                            h, False)
        out = hs.select(0, 0)
        return out if batched else out.squeeze(0)
