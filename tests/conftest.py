"""Test-session setup shared by every test file."""
import os

# CUDA tests run on Numba's CUDA simulator unless a real GPU run is asked for
# (JITORCH_TEST_REAL_GPU=1).  Numba reads this variable when it is first imported,
# so it is set here, before any test imports jitorch.
if os.environ.get("JITORCH_TEST_REAL_GPU", "0") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
