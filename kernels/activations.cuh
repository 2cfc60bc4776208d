// Activations and their derivatives, shared by every cell in kernels/*.cuh.
//
// One source for three compilers: nvcc, NVRTC (CuPy gets the headers as a kernel preamble) and
// the host C++ compiler (tests). NVRTC has no standard headers, so nothing is included there;
// the CUDA math functions are built in. The NumPy twin (xplstm/cells/activations.py) mirrors
// these functions line by line.
#ifndef XPLSTM_ACTIVATIONS_CUH
#define XPLSTM_ACTIVATIONS_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define XPLSTM_HOST_DEVICE __host__ __device__ inline
#else
#include <math.h>
#define XPLSTM_HOST_DEVICE inline
#endif

namespace xplstm {

// tanh for each element type, spelled so that no overload set is needed from <cmath>.
XPLSTM_HOST_DEVICE float tanh_of(float x) { return tanhf(x); }
XPLSTM_HOST_DEVICE double tanh_of(double x) { return tanh(x); }

// Logistic function as sigmoid(x) = 0.5 tanh(x / 2) + 0.5. tanh saturates instead of
// overflowing, so any finite x (1e4 and beyond) gives 0 or 1 exactly; the scalings by 0.5 are
// exact. It is one transcendental per gate, so on NumPy all four LSTM gates take a single tanh
// pass (sigmoid columns scaled by 0.5 around it); its absolute error is one rounding of 0.5.
template <typename T>
XPLSTM_HOST_DEVICE T sigmoid(T x) {
    return T(0.5) * tanh_of(T(0.5) * x) + T(0.5);
}

// Derivatives from the activation's output y, both as (1 - y) (y + k): sigmoid' = (1 - y) y
// (k = 0) and tanh' = (1 - y) (1 + y) (k = 1). The factored tanh form avoids the cancellation of
// 1 - y * y when |y| is close to 1.
template <typename T>
XPLSTM_HOST_DEVICE T sigmoid_grad_from_output(T y) {
    return (T(1) - y) * y;
}

template <typename T>
XPLSTM_HOST_DEVICE T tanh_grad_from_output(T y) {
    return (T(1) - y) * (y + T(1));
}

}  // namespace xplstm

#endif  // XPLSTM_ACTIVATIONS_CUH
