"""Helpers that exercise ``kernels/*.cuh`` without a GPU: a host build and a stand-in for CuPy."""
