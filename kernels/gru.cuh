// Pointwise half of a GRU step, forward and backward: the one source of this math.
//
// torch.nn.GRU's equations, gates stacked in torch order (r, z, n):
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   h_next = (1 - z) * n + z * h, computed as n + z * (h - n).
// The recurrent bias b_hh is added here, not in a GEMM: its n part sits inside r * (...).
//
// Entry points take the element index and raw pointers (see lstm.cuh). `index` runs row-major
// over the (m, H) elements; the three gates of one element are `hidden` apart in a
// C-contiguous (m, 3H) block starting at gru_gate_offset(index, hidden); bias_hh is (3H,).
// The NumPy twin (xplstm/cells/gru.py) mirrors these functions line by line.
#ifndef XPLSTM_GRU_CUH
#define XPLSTM_GRU_CUH

#ifndef XPLSTM_ACTIVATIONS_CUH
#include "activations.cuh"
#endif

namespace xplstm {

// Position of gate r of element `index` in the (m, 3H) gate block.
XPLSTM_HOST_DEVICE long long gru_gate_offset(long long index, long long hidden) {
    return (index / hidden) * 3 * hidden + index % hidden;
}

// Forward step for element `index`.
//   gates      in: input projection + b_ih; out: the activated gates (r, z, n), saved for
//              the backward step.
//   recurrent  the recurrent product h_prev @ W_hh.T (no bias), same layout as gates.
//   bias_hh    (3H,) recurrent bias (zeros for a layer without bias).
//   hidden_n   out: W_hn h_prev + b_hn, saved for the backward step.
template <typename T>
XPLSTM_HOST_DEVICE void gru_forward_element(long long index, long long hidden, T* gates,
                                            const T* recurrent, const T* bias_hh,
                                            const T* h_prev, T* hidden_n, T* h_next) {
    const long long at = gru_gate_offset(index, hidden);
    const long long column = index % hidden;
    T* gate = gates + at;
    const T* product = recurrent + at;
    const T r = sigmoid(gate[0] + (product[0] + bias_hh[column]));
    const T z = sigmoid(gate[hidden] + (product[hidden] + bias_hh[hidden + column]));
    const T hn = product[2 * hidden] + bias_hh[2 * hidden + column];
    const T n = tanh_of(gate[2 * hidden] + r * hn);
    gate[0] = r;
    gate[hidden] = z;
    gate[2 * hidden] = n;
    hidden_n[index] = hn;
    h_next[index] = n + z * (h_prev[index] - n);
}

// Backward step for element `index`.
//   gates      in: the activated gates saved by gru_forward_element; out: the gradients with
//              respect to the input-side pre-activations (r, z, n).
//   drecurrent out: the gradients with respect to the recurrent product + b_hh, same layout
//              (equal to gates' for r and z; r times it for n).
//   dy         gradient reaching h_next from this step's output.
//   dh         in: gradient reaching h_next from the next step; out: its direct part towards
//              h_prev, dh_total * z (the caller adds drecurrent @ W_hh).
//   hidden_n   W_hn h_prev + b_hn saved by the forward step.
template <typename T>
XPLSTM_HOST_DEVICE void gru_backward_element(long long index, long long hidden, T* gates,
                                             T* drecurrent, const T* dy, T* dh,
                                             const T* h_prev, const T* hidden_n) {
    const long long at = gru_gate_offset(index, hidden);
    T* gate = gates + at;
    T* drec = drecurrent + at;
    const T r = gate[0];
    const T z = gate[hidden];
    const T n = gate[2 * hidden];
    const T dh_total = dy[index] + dh[index];
    const T dn = dh_total * (T(1) - z) * tanh_grad_from_output(n);
    const T dz = dh_total * (h_prev[index] - n) * sigmoid_grad_from_output(z);
    const T dr = dn * hidden_n[index] * sigmoid_grad_from_output(r);
    gate[0] = dr;
    gate[hidden] = dz;
    gate[2 * hidden] = dn;
    drec[0] = dr;
    drec[hidden] = dz;
    drec[2 * hidden] = dn * r;
    dh[index] = dh_total * z;
}

}  // namespace xplstm

#endif  // XPLSTM_GRU_CUH
