// Pointwise half of a tanh- or ReLU-RNN step, forward and backward: the one source of this math.
//
// Entry points take the element index and raw pointers (see lstm.cuh); `index` runs row-major
// over the C-contiguous (m, H) elements. The NumPy twin (xplstm/cells/rnn.py) mirrors them.
#ifndef XPLSTM_RNN_CUH
#define XPLSTM_RNN_CUH

#ifndef XPLSTM_ACTIVATIONS_CUH
#include "activations.cuh"
#endif

namespace xplstm {

// Forward step: h_next = tanh(projection + recurrent).
//   h_next     in: input projection + bias; out: the new hidden state (saved for backward).
//   recurrent  the recurrent product h_prev @ W_hh.T.
template <typename T>
XPLSTM_HOST_DEVICE void rnn_forward_element(long long index, T* h_next, const T* recurrent) {
    h_next[index] = tanh_of(h_next[index] + recurrent[index]);
}

// Backward step: the pre-activation gradient (dy + dh) * tanh'(h_next).
//   dy, dh  gradients reaching h_next from this step's output and from the next step.
template <typename T>
XPLSTM_HOST_DEVICE void rnn_backward_element(long long index, T* dpre, const T* h_next,
                                             const T* dy, const T* dh) {
    dpre[index] = (dy[index] + dh[index]) * tanh_grad_from_output(h_next[index]);
}

// ReLU and its gradient from the output, as torch's relu and threshold_backward: NaN stays NaN
// forward; backward passes the gradient where the output is positive and 0 elsewhere (a select,
// not a product, so an infinite gradient at a zero output gives 0, not NaN).
template <typename T>
XPLSTM_HOST_DEVICE T relu_of(T x) {
    return x < T(0) ? T(0) : x;
}

template <typename T>
XPLSTM_HOST_DEVICE T relu_grad_select(T y, T gradient) {
    return y > T(0) ? gradient : T(0);
}

// Forward step of the ReLU RNN: h_next = relu(projection + recurrent); arguments as above.
template <typename T>
XPLSTM_HOST_DEVICE void rnn_relu_forward_element(long long index, T* h_next, const T* recurrent) {
    h_next[index] = relu_of(h_next[index] + recurrent[index]);
}

// Backward step of the ReLU RNN: (dy + dh) where h_next > 0, else 0; arguments as above.
template <typename T>
XPLSTM_HOST_DEVICE void rnn_relu_backward_element(long long index, T* dpre, const T* h_next,
                                                  const T* dy, const T* dh) {
    dpre[index] = relu_grad_select(h_next[index], dy[index] + dh[index]);
}

}  // namespace xplstm

#endif  // XPLSTM_RNN_CUH
