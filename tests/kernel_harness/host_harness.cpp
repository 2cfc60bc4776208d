// Plain C ABI over kernels/lstm_pointwise.cuh for the host tests (loaded with ctypes).
// Each entry point loops over the (m, H) elements the way the CuPy ElementwiseKernel does and
// calls the header's functions once per element.
#include "lstm_pointwise.cuh"

namespace {

template <typename T>
void forward(T* gates, const T* recurrent, const T* c_prev, T* c_next, T* h_next,
             long long batch, long long hidden) {
    for (long long index = 0; index < batch * hidden; ++index) {
        const long long at = xplstm::gate_offset(index, hidden);
        xplstm::lstm_forward_point(gates + at, recurrent + at, hidden, c_prev[index],
                                   c_next[index], h_next[index]);
    }
}

template <typename T>
void backward(const T* dy, const T* dh, T* dc, T* gates, const T* c_prev, const T* c_next,
              long long batch, long long hidden) {
    for (long long index = 0; index < batch * hidden; ++index) {
        const long long at = xplstm::gate_offset(index, hidden);
        xplstm::lstm_backward_point(gates + at, hidden, dy[index], dh[index], dc[index],
                                    c_prev[index], c_next[index]);
    }
}

template <typename T>
void activations(const T* x, T* sigmoid, T* tanh, long long size) {
    for (long long index = 0; index < size; ++index) {
        sigmoid[index] = xplstm::sigmoid(x[index]);
        tanh[index] = xplstm::tanh_of(x[index]);
    }
}

}  // namespace

#define XPLSTM_HARNESS(SUFFIX, T)                                                              \
    void xplstm_forward_##SUFFIX(T* gates, const T* recurrent, const T* c_prev, T* c_next,    \
                                 T* h_next, long long batch, long long hidden) {             \
        forward(gates, recurrent, c_prev, c_next, h_next, batch, hidden);                    \
    }                                                                                          \
    void xplstm_backward_##SUFFIX(const T* dy, const T* dh, T* dc, T* gates, const T* c_prev, \
                                  const T* c_next, long long batch, long long hidden) {      \
        backward(dy, dh, dc, gates, c_prev, c_next, batch, hidden);                          \
    }                                                                                          \
    void xplstm_activations_##SUFFIX(const T* x, T* sigmoid, T* tanh, long long size) {       \
        activations(x, sigmoid, tanh, size);                                                  \
    }

extern "C" {
XPLSTM_HARNESS(float32, float)
XPLSTM_HARNESS(float64, double)
}
