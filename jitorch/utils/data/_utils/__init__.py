"""Compatibility aliases for code that imports torch's private layout, e.g.
``from torch.utils.data._utils.collate import default_collate_fn_map``:
``_utils.collate``, ``_utils.fetch`` and ``_utils.worker`` are the modules
``jitorch.utils.data.collate``, ``.fetch`` and ``.worker``."""

import sys

from .. import collate, fetch, worker

for _mod in (collate, fetch, worker):
    sys.modules[f"{__name__}.{_mod.__name__.rsplit('.', 1)[1]}"] = _mod
del _mod

# torch's polling interval constant (seconds), for code that reads it
MP_STATUS_CHECK_INTERVAL = 5.0
