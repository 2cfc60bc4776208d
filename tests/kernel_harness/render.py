"""Render CuPy kernel definitions to C++ source, verbatim, for the host compiler or ``nvcc``.

A definition is what ``cupy.ElementwiseKernel`` takes: parameter lists, an operation body, a
name and a preamble. :func:`render_kernel` writes the preamble, then one ``extern "C"`` function
whose loop over the element index ``i`` contains the operation text unchanged, declaring every
parameter the way CuPy's generated kernel does:

- ``raw`` arrays are pointers to the first element (``const T*`` for inputs, ``T*`` for outputs
  and ``_non_const`` inputs); the operation indexes them itself (``x[i]``, ``&x[0]``);
- element-wise arrays arrive as ``_raw_<name>`` pointers, and the loop declares ``<name>`` as the
  element's value (inputs) or a reference to it (outputs);
- scalars are ``const`` values of the parameter's C type;
- a one-letter type is a type variable, declared with a ``typedef`` before the preamble.

Nothing depends on the kernel's name or on what the operation says: a swapped argument in an
operation string computes wrong numbers here exactly as it would on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["C_TYPES", "Param", "parse_params", "render_kernel", "render_spec", "resolve_types"]

C_TYPES = {
    np.dtype(np.bool_): "bool",
    np.dtype(np.int8): "signed char",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int64): "long long",
    np.dtype(np.uint64): "unsigned long long",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}
"""C type of each element type the stand-in supports (CuPy's names for them)."""

LOOP_SIZE = "_loop_size"


@dataclass(frozen=True)
class Param:
    """One entry of a CuPy parameter list, e.g. ``raw float32 gates`` (CuPy's ``ParameterInfo``).

    ``dtype`` is ``None`` for a type variable (``type_name`` is then its letter).
    """

    name: str
    type_name: str
    dtype: np.dtype | None
    raw: bool
    const: bool


def parse_params(text: str, is_input: bool) -> tuple[Param, ...]:
    """Parse a comma-separated CuPy parameter list; raise like CuPy on a malformed one."""
    params = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        words = entry.split()
        if len(words) < 2:
            raise Exception(f"Syntax error: {entry!r}")  # CuPy raises a bare Exception here
        type_name, name = words[-2:]
        raw, const = False, is_input
        for keyword in words[:-2]:
            if keyword == "raw":
                raw = True
            elif keyword == "_non_const":
                const = False
            else:
                raise Exception(f'Unknown keyword "{keyword}"')
        dtype = None
        if len(type_name) > 1:
            dtype = np.dtype(type_name)
            if dtype.name != type_name:
                raise ValueError(f"Wrong type {type_name}")
            if dtype not in C_TYPES:
                raise TypeError(f"the host stand-in has no C type for {type_name}")
        if name == "i":
            raise ValueError("Can not use 'i' as a parameter name")
        params.append(Param(name, type_name, dtype, raw, const))
    return tuple(params)


def resolve_types(params: tuple[Param, ...], dtypes: list[np.dtype | None]) -> dict[str, np.dtype]:
    """Bind type variables to the dtypes of their array arguments, as CuPy does.

    ``dtypes`` holds the argument's dtype for arrays and ``None`` for scalars. Raises
    ``TypeError`` (CuPy's message) when an array's dtype differs from its parameter's type or
    from an earlier binding of the same variable.
    """
    bound: dict[str, np.dtype] = {}
    for param, dtype in zip(params, dtypes, strict=True):
        if dtype is None:
            continue
        expected = param.dtype if param.dtype is not None else bound.get(param.type_name)
        if expected is None:
            bound[param.type_name] = dtype
        elif expected != dtype:
            extra = "" if param.dtype is not None else f" {param.type_name}"
            raise TypeError(f"Type is mismatched. {param.name} {dtype.type} {expected.type}{extra}")
    for param, dtype in zip(params, dtypes, strict=True):
        if dtype is None and param.dtype is None and param.type_name not in bound:
            raise TypeError(f"Cannot determine the type of {param.name} ({param.type_name})")
    return bound


def _c_type(param: Param, types: dict[str, np.dtype]) -> str:
    return C_TYPES[param.dtype] if param.dtype is not None else param.type_name


def render_kernel(
    params: tuple[Param, ...],
    is_array: tuple[bool, ...],
    operation: str,
    name: str,
    preamble: str,
    types: dict[str, np.dtype],
    *,
    device: bool = False,
) -> str:
    """C++ source of one kernel: ``extern "C" void name(params..., ptrdiff_t _loop_size)``.

    Parameters
    ----------
    params : tuple of Param
        Inputs, then outputs.
    is_array : tuple of bool
        Per parameter: an array argument (pointer) or a scalar (value).
    operation, name, preamble : str
        As given to ``cupy.ElementwiseKernel``; written out unchanged.
    types : dict
        Type variable -> dtype, from :func:`resolve_types`.
    device : bool
        ``False``: a host function looping over ``0 <= i < _loop_size``. ``True``: a
        ``__global__`` kernel with a grid-stride loop over the same range (for ``nvcc``/NVRTC).
    """
    arguments, declarations = [], []
    for param, array in zip(params, is_array, strict=True):
        ctype = _c_type(param, types)
        const = "const " if param.const else ""
        if not array:
            arguments.append(f"{const}{ctype} {param.name}")
        elif param.raw:
            arguments.append(f"{const}{ctype}* {param.name}")
        else:
            arguments.append(f"{const}{ctype}* _raw_{param.name}")
            if param.const:
                declarations.append(f"const {ctype} {param.name} = _raw_{param.name}[i];")
            else:
                declarations.append(f"{ctype}& {param.name} = _raw_{param.name}[i];")
            declarations.append(f"(void){param.name};")
    arguments.append(f"ptrdiff_t {LOOP_SIZE}")
    pairs = zip(params, is_array, strict=True)
    unused = "".join(f"(void){p.name};" for p, array in pairs if p.raw or not array)
    if device:
        head = f'extern "C" __global__ void {name}({", ".join(arguments)})'
        loop = (
            f"for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; "
            f"i < {LOOP_SIZE}; i += (long long)gridDim.x * blockDim.x)"
        )
        arguments[-1] = f"long long {LOOP_SIZE}"  # NVRTC has no <stddef.h>
        includes = ""
    else:
        head = f'extern "C" void {name}({", ".join(arguments)})'
        loop = f"for (ptrdiff_t i = 0; i < {LOOP_SIZE}; ++i)"
        includes = "#include <stddef.h>\n"
    typedefs = "".join(f"typedef {C_TYPES[t]} {v};\n" for v, t in sorted(types.items()))
    body = "\n".join([*declarations, operation])
    return f"{includes}{typedefs}{preamble}\n{head} {{\n{unused}\n{loop} {{\n{body};\n}}\n}}\n"


def render_spec(spec: Any, preamble: str, *, device: bool = False) -> str:
    """:func:`render_kernel` for an ``xplstm.cuda.specs.KernelSpec`` as the cells launch it:
    ``raw`` parameters get arrays and the others (``int64 hidden``) scalars."""
    params = parse_params(spec.in_params, True) + parse_params(spec.out_params, False)
    is_array = tuple(param.raw for param in params)
    return render_kernel(params, is_array, spec.operation, spec.name, preamble, {}, device=device)
