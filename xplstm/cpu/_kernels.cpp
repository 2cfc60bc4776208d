// The pointwise cell steps of kernels/*.cuh compiled for the host CPU: the CPython extension
// module xplstm.cpu._kernels.
//
// Each step runs the header's own element functions (lstm_forward_at, lstm_backward_at; the
// rnn*_element functions over the flat index) in a loop over rows and a loop over the units of
// a row that the compiler vectorizes (OpenMP SIMD
// directives, -fopenmp-simd: no OpenMP runtime, no threads). A step runs on the calling thread
// with the GIL released. Row loops on OpenMP threads were measured and left out: on a 2-core
// machine whose other core was busy (BLAS threads, another process), a team of 2 waited about
// 8 ms per step for its second thread, against 50-300 us of work.
//
// hatch_build.py builds this file when a C++ compiler and glibc's vector math library are
// found; xplstm/cpu/__init__.py loads it, and the NumPy twin runs otherwise.
//
// No -ffast-math: the vector tanhf and expm1 (the header's host double tanh) come from glibc's
// libmvec, whose SIMD variants keep the scalar functions' results for inf and NaN. glibc
// declares them only under -ffast-math (which would also let the compiler assume there are no
// infs and NaNs), so they are declared here, before the header calls them.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#pragma omp declare simd notinbranch
extern "C" float tanhf(float) throw();
#pragma omp declare simd notinbranch
extern "C" double expm1(double) throw();

#include "lstm.cuh"
#include "rnn.cuh"

#ifndef XPLSTM_HEADER_DIGEST
#define XPLSTM_HEADER_DIGEST ""
#endif

// One copy of each row loop per x86-64 level, chosen at load time for the CPU that runs it
// (AVX-512 takes libmvec's 16-float variants), so a wheel built on one machine runs on any.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define XPLSTM_ROW_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define XPLSTM_ROW_CLONES
#endif

namespace {

template <typename T>
XPLSTM_ROW_CLONES void forward_row(long long hidden, T* gates, const T* recurrent,
                                   const T* c_prev, T* c_next, T* h_next) {
#pragma omp simd
    for (long long unit = 0; unit < hidden; ++unit) {
        xplstm::lstm_forward_at(hidden, gates + unit, recurrent + unit, c_prev[unit],
                                c_next[unit], h_next[unit]);
    }
}

template <typename T>
XPLSTM_ROW_CLONES void backward_row(long long hidden, T* gates, const T* dy, const T* dh,
                                    T* dc, const T* c_prev, const T* c_next) {
#pragma omp simd
    for (long long unit = 0; unit < hidden; ++unit) {
        xplstm::lstm_backward_at(hidden, gates + unit, dy[unit], dh[unit], dc[unit],
                                 c_prev[unit], c_next[unit]);
    }
}

template <typename T>
void forward_rows(long long rows, long long hidden, void* const* data) {
    T* gates = static_cast<T*>(data[0]);
    const T* recurrent = static_cast<const T*>(data[1]);
    const T* c_prev = static_cast<const T*>(data[2]);
    T* c_next = static_cast<T*>(data[3]);
    T* h_next = static_cast<T*>(data[4]);
    for (long long row = 0; row < rows; ++row) {
        const long long block = row * 4 * hidden, cell = row * hidden;
        forward_row(hidden, gates + block, recurrent + block, c_prev + cell, c_next + cell,
                    h_next + cell);
    }
}

template <typename T>
void backward_rows(long long rows, long long hidden, void* const* data) {
    T* gates = static_cast<T*>(data[0]);
    const T* dy = static_cast<const T*>(data[1]);
    const T* dh = static_cast<const T*>(data[2]);
    T* dc = static_cast<T*>(data[3]);
    const T* c_prev = static_cast<const T*>(data[4]);
    const T* c_next = static_cast<const T*>(data[5]);
    for (long long row = 0; row < rows; ++row) {
        const long long block = row * 4 * hidden, cell = row * hidden;
        backward_row(hidden, gates + block, dy + cell, dh + cell, dc + cell, c_prev + cell,
                     c_next + cell);
    }
}

// The RNN steps index the C-contiguous (m, H) arrays directly: one loop over all elements.
template <typename T>
XPLSTM_ROW_CLONES void rnn_forward_all(long long size, bool relu, void* const* data) {
    T* h_next = static_cast<T*>(data[0]);
    const T* recurrent = static_cast<const T*>(data[1]);
    if (relu) {
#pragma omp simd
        for (long long index = 0; index < size; ++index) {
            xplstm::rnn_relu_forward_element(index, h_next, recurrent);
        }
    } else {
#pragma omp simd
        for (long long index = 0; index < size; ++index) {
            xplstm::rnn_forward_element(index, h_next, recurrent);
        }
    }
}

template <typename T>
XPLSTM_ROW_CLONES void rnn_backward_all(long long size, bool relu, void* const* data) {
    T* dpre = static_cast<T*>(data[0]);
    const T* h_next = static_cast<const T*>(data[1]);
    const T* dy = static_cast<const T*>(data[2]);
    const T* dh = static_cast<const T*>(data[3]);
    if (relu) {
#pragma omp simd
        for (long long index = 0; index < size; ++index) {
            xplstm::rnn_relu_backward_element(index, dpre, h_next, dy, dh);
        }
    } else {
#pragma omp simd
        for (long long index = 0; index < size; ++index) {
            xplstm::rnn_backward_element(index, dpre, h_next, dy, dh);
        }
    }
}

// The arguments of one step as C-contiguous buffers: `widths[k]` is 4 for a (m, 4H) gate
// block and 1 for an (m, H) array; `writable[k]` marks the outputs.
const int kMaxArguments = 6;

struct Step {
    Py_buffer views[kMaxArguments];
    int count = 0;
    long long rows = 0, hidden = 0;
    char format = 0;

    ~Step() {
        for (int k = 0; k < count; ++k) PyBuffer_Release(&views[k]);
    }

    bool acquire(PyObject* args, const char* name, const char* const* names, const int* widths,
                 const bool* writable, int expected) {
        if (PyTuple_GET_SIZE(args) != expected) {
            PyErr_Format(PyExc_TypeError, "%s takes %d arrays, got %zd", name, expected,
                         PyTuple_GET_SIZE(args));
            return false;
        }
        for (int k = 0; k < expected; ++k) {
            int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable[k] ? PyBUF_WRITABLE : 0);
            if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, k), &views[k], flags) != 0) {
                return false;
            }
            count = k + 1;
            Py_buffer& view = views[k];
            const char* code = view.format;
            if (code[0] == '<' || code[0] == '=' || code[0] == '@') ++code;
            if (view.ndim != 2 || (code[0] != 'f' && code[0] != 'd') || code[1] != '\0') {
                PyErr_Format(PyExc_TypeError,
                             "%s: %s must be a 2-d float32 or float64 array, got format '%s' "
                             "with %d dimensions",
                             name, names[k], view.format, view.ndim);
                return false;
            }
            if (k == 0) {
                format = code[0];
                rows = view.shape[0];
                hidden = view.shape[1] / widths[0];
            }
            if (code[0] != format) {
                PyErr_Format(PyExc_TypeError, "%s: %s has another dtype than %s", name,
                             names[k], names[0]);
                return false;
            }
            if (view.shape[0] != rows || view.shape[1] != widths[k] * hidden ||
                (k == 0 && view.shape[1] % widths[0] != 0)) {
                PyErr_Format(PyExc_ValueError,
                             "%s: %s has shape (%zd, %zd), expected (%lld, %lld) from %s", name,
                             names[k], view.shape[0], view.shape[1], rows, widths[k] * hidden,
                             names[0]);
                return false;
            }
        }
        return true;
    }

    void* const* data(void** pointers) const {
        for (int k = 0; k < count; ++k) pointers[k] = views[k].buf;
        return pointers;
    }
};

// The body every entry point shares: check the step's arguments against `names`, `widths`
// and `writable`, then run Loop::run<float> or Loop::run<double> on their data without the
// GIL.
template <typename Loop>
PyObject* run_step(PyObject* args, const char* name, const char* const* names,
                   const int* widths, const bool* writable, int count) {
    Step step;
    if (!step.acquire(args, name, names, widths, writable, count)) return nullptr;
    void* pointers[kMaxArguments];
    void* const* data = step.data(pointers);
    Py_BEGIN_ALLOW_THREADS;
    if (step.format == 'f') {
        Loop::template run<float>(step.rows, step.hidden, data);
    } else {
        Loop::template run<double>(step.rows, step.hidden, data);
    }
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

struct LSTMForward {
    template <typename T>
    static void run(long long rows, long long hidden, void* const* data) {
        forward_rows<T>(rows, hidden, data);
    }
};

struct LSTMBackward {
    template <typename T>
    static void run(long long rows, long long hidden, void* const* data) {
        backward_rows<T>(rows, hidden, data);
    }
};

template <bool Relu>
struct RNNForward {
    template <typename T>
    static void run(long long rows, long long hidden, void* const* data) {
        rnn_forward_all<T>(rows * hidden, Relu, data);
    }
};

template <bool Relu>
struct RNNBackward {
    template <typename T>
    static void run(long long rows, long long hidden, void* const* data) {
        rnn_backward_all<T>(rows * hidden, Relu, data);
    }
};

const char* const kForwardNames[] = {"gates", "recurrent", "c_prev", "c_next", "h_next"};
const int kForwardWidths[] = {4, 4, 1, 1, 1};
const bool kForwardWritable[] = {true, false, false, true, true};

PyObject* lstm_forward(PyObject*, PyObject* args) {
    return run_step<LSTMForward>(args, "lstm_forward", kForwardNames, kForwardWidths,
                                 kForwardWritable, 5);
}

const char* const kBackwardNames[] = {"gates", "dy", "dh", "dc", "c_prev", "c_next"};
const int kBackwardWidths[] = {4, 1, 1, 1, 1, 1};
const bool kBackwardWritable[] = {true, false, false, true, false, false};

PyObject* lstm_backward(PyObject*, PyObject* args) {
    return run_step<LSTMBackward>(args, "lstm_backward", kBackwardNames, kBackwardWidths,
                                  kBackwardWritable, 6);
}

const char* const kRNNForwardNames[] = {"h_next", "recurrent"};
const int kRNNForwardWidths[] = {1, 1};
const bool kRNNForwardWritable[] = {true, false};
const char* const kRNNBackwardNames[] = {"dpre", "h_next", "dy", "dh"};
const int kRNNBackwardWidths[] = {1, 1, 1, 1};
const bool kRNNBackwardWritable[] = {true, false, false, false};

template <bool Relu>
PyObject* rnn_forward(PyObject*, PyObject* args) {
    return run_step<RNNForward<Relu>>(args, Relu ? "rnn_relu_forward" : "rnn_forward",
                                      kRNNForwardNames, kRNNForwardWidths, kRNNForwardWritable,
                                      2);
}

template <bool Relu>
PyObject* rnn_backward(PyObject*, PyObject* args) {
    return run_step<RNNBackward<Relu>>(args, Relu ? "rnn_relu_backward" : "rnn_backward",
                                       kRNNBackwardNames, kRNNBackwardWidths,
                                       kRNNBackwardWritable, 4);
}

PyMethodDef kMethods[] = {
    {"lstm_forward", lstm_forward, METH_VARARGS,
     "lstm_forward(gates, recurrent, c_prev, c_next, h_next): lstm_forward_at per element."},
    {"lstm_backward", lstm_backward, METH_VARARGS,
     "lstm_backward(gates, dy, dh, dc, c_prev, c_next): lstm_backward_at per element."},
    {"rnn_forward", rnn_forward<false>, METH_VARARGS,
     "rnn_forward(h_next, recurrent): rnn_forward_element per element."},
    {"rnn_backward", rnn_backward<false>, METH_VARARGS,
     "rnn_backward(dpre, h_next, dy, dh): rnn_backward_element per element."},
    {"rnn_relu_forward", rnn_forward<true>, METH_VARARGS,
     "rnn_relu_forward(h_next, recurrent): rnn_relu_forward_element per element."},
    {"rnn_relu_backward", rnn_backward<true>, METH_VARARGS,
     "rnn_relu_backward(dpre, h_next, dy, dh): rnn_relu_backward_element per element."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT, "_kernels", "kernels/*.cuh compiled for the host CPU.", -1, kMethods,
    nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject* module = PyModule_Create(&kModule);
    if (module == nullptr) return nullptr;
    if (PyModule_AddStringConstant(module, "HEADER_DIGEST", XPLSTM_HEADER_DIGEST) != 0) {
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
