"""``SummaryWriter``: TensorBoard event files, written with the ``tensorboard`` package's own writer."""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from . import _summary

_INSTALL_HINT = ("jitorch.utils.tensorboard needs the tensorboard package; install it with "
                 "`pip install jitorch[tensorboard]` (or `pip install tensorboard`)")


def _event_file_writer():
    try:
        import tensorboard  # noqa: F401  (fails first, and clearly, when the package is absent)
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise ImportError(f"{_INSTALL_HINT} ({e})") from e
    return EventFileWriter


def _event(**fields):
    from tensorboard.compat.proto.event_pb2 import Event
    return Event(**fields)


class SummaryWriter:
    """Writes scalars, histograms, images, text and graphs for TensorBoard, like ``torch.utils.tensorboard``.

    >>> from jitorch.utils.tensorboard import SummaryWriter  # doctest: +SKIP
    >>> with SummaryWriter("runs/exp1") as w:                 # doctest: +SKIP
    ...     w.add_scalar("loss", 0.5, global_step=1)
    """

    def __init__(self, log_dir=None, comment: str = "", purge_step=None, max_queue: int = 10,
                 flush_secs: int = 120, filename_suffix: str = ""):
        self._writer_cls = _event_file_writer()
        if not log_dir:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        self.purge_step = purge_step
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self.filename_suffix = filename_suffix
        self._file_writer = None
        self._all_writers: dict = {}
        self._closed = False
        self._main()  # create the directory and the event file now, as torch does

    # -- writers -------------------------------------------------------------------------------------------
    def _new_writer(self, logdir: str):
        w = self._writer_cls(logdir, self.max_queue, self.flush_secs, self.filename_suffix)
        if self.purge_step is not None:
            from tensorboard.compat.proto.event_pb2 import SessionLog
            # events from an earlier run at or after purge_step are discarded by TensorBoard
            w.add_event(_event(step=self.purge_step, wall_time=time.time(),
                               session_log=SessionLog(status=SessionLog.START)))
        return w

    def _main(self):
        if self._closed:
            raise RuntimeError("this SummaryWriter is closed")
        if self._file_writer is None:
            self._file_writer = self._new_writer(self.log_dir)
            self._all_writers[self.log_dir] = self._file_writer
        return self._file_writer

    def get_logdir(self) -> str:
        return self.log_dir

    def _add_summary(self, summary, global_step, walltime, writer=None) -> None:
        fields = {"summary": summary, "wall_time": time.time() if walltime is None else float(walltime)}
        if global_step is not None:
            fields["step"] = int(global_step)
        (writer or self._main()).add_event(_event(**fields))

    # -- data ------------------------------------------------------------------------------------------------
    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None, new_style: bool = False,
                   double_precision: bool = False) -> None:
        """One point of the scalar series ``tag`` (a number or a one-element tensor)."""
        self._add_summary(_summary.scalar(tag, scalar_value, new_style, double_precision), global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step=None, walltime=None) -> None:
        """Several series in one chart: each goes to the run ``<log_dir>/<main_tag>_<tag>`` under tag ``main_tag``."""
        if not isinstance(tag_scalar_dict, dict):
            raise TypeError(f"tag_scalar_dict must be a dict, got {type(tag_scalar_dict).__name__}")
        walltime = time.time() if walltime is None else walltime
        for tag, value in tag_scalar_dict.items():
            run_dir = os.path.join(self.log_dir, main_tag.replace("/", "_") + "_" + tag)
            self._main()
            w = self._all_writers.get(run_dir)
            if w is None:
                w = self._all_writers[run_dir] = self._new_writer(run_dir)
            self._add_summary(_summary.scalar(main_tag, value), global_step, walltime, writer=w)

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None) -> None:
        """A histogram of ``values``; ``bins`` is NumPy's (a count, edges or a method name) or "tensorflow"."""
        if isinstance(bins, str) and bins == "tensorflow":
            bins = _summary.tensorflow_bins()
        self._add_summary(_summary.histogram(tag, values, bins, max_bins), global_step, walltime)

    def add_image(self, tag: str, img_tensor, global_step=None, walltime=None, dataformats: str = "CHW") -> None:
        """One image: floats in [0, 1] or uint8 in [0, 255], laid out as ``dataformats`` (CHW, HWC, HW...)."""
        self._add_summary(_summary.image(tag, img_tensor, dataformats), global_step, walltime)

    def add_images(self, tag: str, img_tensor, global_step=None, walltime=None, dataformats: str = "NCHW") -> None:
        """A batch of images, tiled into one grid image."""
        if len(dataformats) != 4:
            raise ValueError(f"add_images needs a batched layout (NCHW or NHWC), got {dataformats!r}")
        self._add_summary(_summary.image(tag, img_tensor, dataformats), global_step, walltime)

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None) -> None:
        """A (markdown) text entry, shown by TensorBoard's text plugin under ``<tag>/text_summary``."""
        self._add_summary(_summary.text(tag, text_string), global_step, walltime)

    def add_graph(self, model, input_to_model=None, verbose: bool = False, use_strict_trace: bool = True) -> None:
        """The model's forward graph (from jitorch's compiler IR), shown by TensorBoard's graph plugin."""
        from . import _graph
        graph, weight_scopes = _graph.trace_with_scopes(model, input_to_model)
        if verbose:
            print(graph)
        gd = _graph.graph_def(graph, weight_scopes)
        self._main().add_event(_event(graph_def=gd.SerializeToString(), wall_time=time.time()))

    # -- lifetime ----------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything queued so far to disk."""
        for w in self._all_writers.values():
            w.flush()

    def close(self) -> None:
        """Flush and close every event file; later add_* calls raise."""
        if self._closed:
            return
        for w in self._all_writers.values():
            w.flush()
            w.close()
        self._all_writers.clear()
        self._file_writer = None
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
