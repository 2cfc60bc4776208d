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
#if defined(__CUDA_ARCH__) || defined(__CUDACC_RTC__)
XPLSTM_HOST_DEVICE double tanh_of(double x) { return tanh(x); }
#else
// On the host, double tanh through expm1: tanh|x| = e / (e + 2) with e = expm1(2|x|), and the
// sign put back. glibc's vector expm1 takes about half the time of its vector tanh in double
// (the compiled CPU loops of xplstm/cpu call them). The ratio stays relatively accurate near 0
// (expm1) and near 1 (e's own error fades as 2 / (e + 2)); |x| is capped at 20, past which
// tanh rounds to 1, so e never overflows. tanh(+-inf) = +-1, NaN stays NaN (the cap compares
// false), -0 stays -0.
XPLSTM_HOST_DEVICE double tanh_of(double x) {
    const double magnitude = fabs(x);
    const double e = expm1(2.0 * (magnitude > 20.0 ? 20.0 : magnitude));
    return copysign(e / (e + 2.0), x);
}
#endif

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
