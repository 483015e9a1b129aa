"""Graph -> Graph passes, run in the order of ``PIPELINE``."""
from __future__ import annotations

from .broadcasts import fold_expands
from .cse import cse
from .dce import dce
from .fold import fold_constants
from .matmul_layout import transpose_matmul_outputs
from .reductions import squeeze_reductions
from .scatter_to_cat import slices_to_cat
from .views import simplify_views

PIPELINE = (
    ("simplify_views", simplify_views),
    ("fold_constants", fold_constants),
    ("slices_to_cat", slices_to_cat),
    ("transpose_matmul_outputs", transpose_matmul_outputs),
    ("fold_expands", fold_expands),
    ("squeeze_reductions", squeeze_reductions),
    ("simplify_views_again", simplify_views),  # permutes of permutes the rewrites above made
    ("cse", cse),
    ("dce", dce),
)


def run_pipeline(graph, log=None):
    for name, p in PIPELINE:
        graph = p(graph)
        if log is not None:
            log(name, graph)
    return graph
