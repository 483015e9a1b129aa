"""Graph -> Graph passes, run in the order of ``PIPELINE``."""
from __future__ import annotations

from .cse import cse
from .dce import dce
from .fold import fold_constants
from .views import simplify_views

PIPELINE = (("simplify_views", simplify_views), ("fold_constants", fold_constants), ("cse", cse), ("dce", dce))


def run_pipeline(graph, log=None):
    for name, p in PIPELINE:
        graph = p(graph)
        if log is not None:
            log(name, graph)
    return graph
