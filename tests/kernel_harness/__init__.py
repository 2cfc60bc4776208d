"""Run CuPy kernels and CuPy code without a GPU: kernel specs rendered to host C++, a CuPy stand-in.

- :mod:`.render`: a kernel definition (CuPy's parameter lists, operation, preamble) to C++ source,
  the operation text verbatim inside the element loop, for ``g++`` or ``nvcc``;
- :mod:`.host`: compile and cache that source, and launch it on NumPy arrays with CuPy's rules;
- :mod:`.device_array`: ``DeviceArray``, the stand-in's ``cupy.ndarray`` (not a NumPy array);
- :mod:`.stand_in`: ``fake_cupy()``, the stand-in ``cupy`` module;
- :mod:`.stand_in_gpu`: pytest plugin that installs it for the ``gpu`` tests;
- :mod:`.corrupt_operation`: pytest plugin that swaps two arguments in one kernel operation, to
  show that the ``gpu`` tests catch it.
"""
