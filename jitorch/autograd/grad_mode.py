"""Global switches that decide whether ops record history for autograd."""
from __future__ import annotations

import functools
import threading


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.inference = False


_state = _State()


def is_grad_enabled() -> bool:
    return _state.grad_enabled


def is_inference_mode_enabled() -> bool:
    return _state.inference


class _GradModeContext:
    """Base for context managers that are also decorators (like torch's)."""

    _enable: bool = True

    def __init__(self, *args):
        # torch allows @no_grad and @no_grad(): a bare function lands here
        self._func = args[0] if args and callable(args[0]) else None
        if self._func is not None:
            functools.update_wrapper(self, self._func)

    def __call__(self, *args, **kwargs):
        if self._func is not None:
            with self.__class__():
                return self._func(*args, **kwargs)
        func = args[0]

        @functools.wraps(func)
        def wrapper(*a, **k):
            with self.__class__():
                return func(*a, **k)

        return wrapper

    def __enter__(self):
        self._prev = _state.grad_enabled
        _state.grad_enabled = self._enable
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev
        return False

    def clone(self):
        return self.__class__()


class no_grad(_GradModeContext):
    """Disable gradient recording: ``with jitorch.no_grad(): y = x * 2``."""

    _enable = False


class enable_grad(_GradModeContext):
    """Re-enable gradient recording inside ``no_grad``."""

    _enable = True


class set_grad_enabled:
    """Set grad mode on or off; a function, a context manager and a decorator."""

    def __init__(self, mode: bool):
        self._prev = _state.grad_enabled
        self.mode = bool(mode)
        _state.grad_enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev
        return False

    def __call__(self, func):
        mode = self.mode
        _state.grad_enabled = self._prev

        @functools.wraps(func)
        def wrapper(*a, **k):
            with set_grad_enabled(mode):
                return func(*a, **k)

        return wrapper


class inference_mode(_GradModeContext):
    """Like ``no_grad``; tensors made inside are marked as inference tensors."""

    def __init__(self, mode=True):
        if callable(mode):
            super().__init__(mode)
            self.mode = True
        else:
            super().__init__()
            self.mode = bool(mode)
        self._enable = not self.mode

    def __call__(self, *args, **kwargs):
        if self._func is not None:
            with inference_mode(self.mode):
                return self._func(*args, **kwargs)
        func = args[0]
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*a, **k):
            with inference_mode(mode):
                return func(*a, **k)

        return wrapper

    def __enter__(self):
        self._prev_inf = _state.inference
        _state.inference = self.mode
        return super().__enter__()

    def __exit__(self, *exc):
        _state.inference = self._prev_inf
        return super().__exit__(*exc)
