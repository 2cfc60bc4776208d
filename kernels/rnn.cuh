// Pointwise half of a tanh-RNN step, forward and backward: the one source of this math.
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

}  // namespace xplstm

#endif  // XPLSTM_RNN_CUH
