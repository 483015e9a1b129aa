"""The CUDA device backend: numba.cuda kernels over memory from jitorch's caching allocator.

``numba.cuda`` (the ``numba-cuda`` package, the ``cuda`` extra) is imported on
first use, never by ``import jitorch``.  Under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) every kernel runs on the CPU on NumPy-backed
device arrays, which is how the CUDA tests run on machines without a GPU.

Layout of this package:
- ``driver``: is numba.cuda importable, is a device present, simulated or real;
- ``memory``: the caching allocator (``Storage`` blocks, statistics, OOM errors);
- ``array``: ``CudaArray``, the ndarray-like value a CUDA tensor keeps in ``_data``;
- ``copy``: strided device-to-device copies and casts, fills, host transfers;
- ``launch``: launch configurations (grid-stride loops);
- ``backend``: imports every ``ops_*`` module (each registers ``op.impl["cuda"]``
  functions for one op family) on first CUDA use;
- ``fallback``: kernel ops without a CUDA implementation run on host copies,
  visibly (``JITORCH_LOGS=cuda_fallback``, ``jitorch.cuda._host_fallback_ops()``).
"""
