// Pointwise half of an LSTM step, forward and backward, for one (batch row, hidden unit) element.
//
// The single source of this math for three compilers: nvcc, NVRTC (CuPy's ElementwiseKernel gets
// this file as its preamble) and the host C++ compiler (the test harness). NVRTC has no standard
// headers, so nothing is included there; the CUDA math functions are built in.
//
// Layout: the four gates of one element are stacked in torch order (i, f, g, o) in a C-contiguous
// (m, 4H) block, so they lie `hidden` apart starting at gate_offset(index, hidden).
#ifndef XPLSTM_LSTM_POINTWISE_CUH
#define XPLSTM_LSTM_POINTWISE_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define XPLSTM_HOST_DEVICE __host__ __device__ inline
#else
#include <math.h>
#define XPLSTM_HOST_DEVICE inline
#endif

namespace xplstm {

// exp and tanh for each element type, spelled so that no overload set is needed from <cmath>.
XPLSTM_HOST_DEVICE float exp_of(float x) { return expf(x); }
XPLSTM_HOST_DEVICE double exp_of(double x) { return exp(x); }
XPLSTM_HOST_DEVICE float tanh_of(float x) { return tanhf(x); }
XPLSTM_HOST_DEVICE double tanh_of(double x) { return tanh(x); }

// Logistic function for any finite x. exp only ever sees -|x|, so it cannot overflow; for x < 0
// the result is e / (1 + e), which keeps full relative precision down to the underflow limit.
template <typename T>
XPLSTM_HOST_DEVICE T sigmoid(T x) {
    const bool negative = x < T(0);
    const T e = exp_of(negative ? x : -x);
    const T reciprocal = T(1) / (T(1) + e);
    return negative ? e * reciprocal : reciprocal;
}

// Derivatives from the activation's output y: sigmoid' = y (1 - y), tanh' = (1 - y) (1 + y).
// The factored tanh form avoids the cancellation of 1 - y * y when |y| is close to 1.
template <typename T>
XPLSTM_HOST_DEVICE T sigmoid_grad_from_output(T y) {
    return y * (T(1) - y);
}

template <typename T>
XPLSTM_HOST_DEVICE T tanh_grad_from_output(T y) {
    return (T(1) - y) * (T(1) + y);
}

// Position of gate i of element `index` (row-major over (m, H)) in the (m, 4H) gate block.
XPLSTM_HOST_DEVICE long long gate_offset(long long index, long long hidden) {
    return (index / hidden) * 4 * hidden + index % hidden;
}

// Forward step for one element.
//   gates     in: input projection + bias of gate i (f, g, o follow `hidden` apart);
//             out: the activated gates (i, f, g, o), saved for the backward step.
//   recurrent the recurrent product h_prev @ W_hh.T, same layout as gates.
//   c_next = f * c_prev + i * g,  h_next = o * tanh(c_next).
template <typename T>
XPLSTM_HOST_DEVICE void lstm_forward_point(T* gates, const T* recurrent, long long hidden,
                                           T c_prev, T& c_next, T& h_next) {
    const T i = sigmoid(gates[0] + recurrent[0]);
    const T f = sigmoid(gates[hidden] + recurrent[hidden]);
    const T g = tanh_of(gates[2 * hidden] + recurrent[2 * hidden]);
    const T o = sigmoid(gates[3 * hidden] + recurrent[3 * hidden]);
    gates[0] = i;
    gates[hidden] = f;
    gates[2 * hidden] = g;
    gates[3 * hidden] = o;
    const T c = f * c_prev + i * g;
    c_next = c;
    h_next = o * tanh_of(c);
}

// Backward step for one element.
//   gates  in: the activated gates saved by lstm_forward_point;
//          out: the gradients with respect to the four gate pre-activations.
//   dy, dh gradients reaching h_next from this step's output and from the next step.
//   dc     in: gradient reaching c_next; out: gradient with respect to c_prev.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_backward_point(T* gates, long long hidden, T dy, T dh, T& dc,
                                            T c_prev, T c_next) {
    const T i = gates[0];
    const T f = gates[hidden];
    const T g = gates[2 * hidden];
    const T o = gates[3 * hidden];
    const T dh_total = dy + dh;
    const T tanh_c = tanh_of(c_next);
    const T dc_total = dc + dh_total * o * tanh_grad_from_output(tanh_c);
    gates[0] = dc_total * g * sigmoid_grad_from_output(i);
    gates[hidden] = dc_total * c_prev * sigmoid_grad_from_output(f);
    gates[2 * hidden] = dc_total * i * tanh_grad_from_output(g);
    gates[3 * hidden] = dh_total * tanh_c * sigmoid_grad_from_output(o);
    dc = dc_total * f;
}

}  // namespace xplstm

#endif  // XPLSTM_LSTM_POINTWISE_CUH
