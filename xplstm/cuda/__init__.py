"""CUDA side of the cells: kernel specs rendered from ``kernels/*.cuh`` and their CuPy bindings.

:mod:`xplstm.cuda.specs` is plain strings (no CuPy needed, so tests compile them on any machine);
:mod:`xplstm.cuda.fused` imports CuPy on first use.
"""
