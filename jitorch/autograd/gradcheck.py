"""Check analytical gradients against central finite differences."""
from __future__ import annotations

import numpy as np


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _numerical_jacobian(fn, inputs, idx, eps):
    import jitorch
    x = inputs[idx]
    flat = x._data.reshape(-1) if x._data.flags.c_contiguous else None
    if flat is None:
        raise GradcheckError("gradcheck needs contiguous inputs")
    cols = []

    def evaluate():
        # grad mode stays on: ``fn`` may itself differentiate (gradgradcheck's first_grad does)
        return [o.detach().double()._host().reshape(-1).copy() for o in _as_tuple(fn(*inputs))
                if isinstance(o, jitorch.Tensor)]

    host = x._host().reshape(-1)  # the unperturbed values (a copy for a device input)
    for k in range(flat.size):
        orig = host[k]
        flat[k] = orig + eps
        plus = evaluate()
        flat[k] = orig - eps
        minus = evaluate()
        flat[k] = orig
        cols.append(np.concatenate([(p - m) / (2 * eps) for p, m in zip(plus, minus)]))
    return np.stack(cols, axis=0) if cols else np.zeros((0, 0))


def _analytical_jacobian(fn, inputs, diff_idx, create_graph=False):
    import jitorch
    outs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, jitorch.Tensor)]
    total = sum(o.numel() for o in outs)
    rows = {i: np.zeros((inputs[i].numel(), total)) for i in diff_idx}
    col = 0
    for o in outs:
        for k in range(o.numel()):
            if not o.requires_grad:
                col += 1
                continue
            g = jitorch.zeros_like(o)
            g._data.reshape(-1)[k] = 1
            grads = jitorch.autograd.grad(o, [inputs[i] for i in diff_idx], g, retain_graph=True,
                                          allow_unused=True)
            for i, gr in zip(diff_idx, grads):
                if gr is not None:
                    rows[i][:, col] = gr.detach().double()._host().reshape(-1)
            col += 1
    return rows


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, fast_mode=False, check_grad_dtypes=False, check_batched_grad=False,
              check_backward_ad=True, masked=None) -> bool:
    """True if ``func``'s gradients match finite differences for these (float64) inputs."""
    import jitorch
    inputs = _as_tuple(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, jitorch.Tensor) and x.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of the them "
                         "have requires_grad=True.")
    for i in diff_idx:
        if inputs[i].dtype is not jitorch.float64:
            import warnings
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point. "
                          "This check will likely fail if all the inputs are not of double precision floating "
                          "point.", UserWarning, stacklevel=2)
    analytical = _analytical_jacobian(func, inputs, diff_idx)
    for i in diff_idx:
        numerical = _numerical_jacobian(func, inputs, i, eps)
        a = analytical[i]
        if numerical.shape != a.shape:
            numerical = numerical.reshape(a.shape)
        if not np.allclose(a, numerical, rtol=rtol, atol=atol, equal_nan=True):
            if raise_exception:
                raise GradcheckError(
                    f"Jacobian mismatch for output 0 with respect to input {i},\nnumerical:{numerical}\n"
                    f"analytical:{a}\n")
            return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                  **kwargs) -> bool:
    """gradcheck of the gradient function itself (second derivatives)."""
    import jitorch
    inputs = _as_tuple(inputs)
    diff = [x for x in inputs if isinstance(x, jitorch.Tensor) and x.requires_grad]
    outs = [o for o in _as_tuple(func(*inputs))]
    if grad_outputs is None:
        gen = jitorch.Generator().manual_seed(0)
        grad_outputs = tuple(jitorch.randn(*o.shape, dtype=o.dtype, generator=gen).requires_grad_() for o in outs)
    grad_outputs = _as_tuple(grad_outputs)
    n = len(inputs)

    def first_grad(*args):
        ins, gos = args[:n], args[n:]
        o = _as_tuple(func(*ins))
        gs = jitorch.autograd.grad(o, [x for x in ins if isinstance(x, jitorch.Tensor) and x.requires_grad], gos,
                                   create_graph=True, allow_unused=True)
        diff_ins = [x for x in ins if isinstance(x, jitorch.Tensor) and x.requires_grad]
        return tuple(g if g is not None else jitorch.zeros_like(x) for g, x in zip(gs, diff_ins))

    del diff
    return gradcheck(first_grad, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
