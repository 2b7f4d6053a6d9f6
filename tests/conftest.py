"""Shared test setup: nothing may reach a model hub, and plots render off-screen."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a mistake fails in 0.4 s instead of a 23 s timeout
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# mlx[cpu] on Linux ships the reference BLAS (13x slower matrix products); OpenBLAS, when
# installed, must be loaded before anything imports mlx (see asr_lab.backends.mlx_blas)
from asr_lab.backends.mlx_blas import preload_blas  # noqa: E402

preload_blas()
