// Pointwise half of an LSTM step, forward and backward: the one source of this math.
//
// Entry points take the element index and raw pointers, so a CuPy operation body, a raw CUDA
// kernel and a host loop each make a single call per element. The NumPy twin
// (xplstm/cells/lstm.py) mirrors these functions line by line.
//
// Layout: `index` runs row-major over the (m, H) elements. The four gates of one element are
// stacked in torch order (i, f, g, o) in a C-contiguous (m, 4H) block, `hidden` apart starting
// at gate_offset(index, hidden). Every (m, H) array is C-contiguous.
#ifndef XPLSTM_LSTM_CUH
#define XPLSTM_LSTM_CUH

#ifndef XPLSTM_ACTIVATIONS_CUH
#include "activations.cuh"
#endif

namespace xplstm {

// Position of gate i of element `index` in the (m, 4H) gate block.
XPLSTM_HOST_DEVICE long long gate_offset(long long index, long long hidden) {
    return (index / hidden) * 4 * hidden + index % hidden;
}

// Forward step of one element, given where its values are: `gate` and `product` point at its
// gate i, with f, g and o `hidden` apart after it. lstm_forward_element finds an element from
// its index and calls this; a host loop over the units of one row calls it directly, with no
// index arithmetic in the loop, so that the compiler can vectorize it.
//   c_next = f * c_prev + i * g,  h_next = o * tanh(c_next).
template <typename T>
XPLSTM_HOST_DEVICE void lstm_forward_at(long long hidden, T* gate, const T* product,
                                        const T c_prev, T& c_next, T& h_next) {
    const T i = sigmoid(gate[0] + product[0]);
    const T f = sigmoid(gate[hidden] + product[hidden]);
    const T g = tanh_of(gate[2 * hidden] + product[2 * hidden]);
    const T o = sigmoid(gate[3 * hidden] + product[3 * hidden]);
    gate[0] = i;
    gate[hidden] = f;
    gate[2 * hidden] = g;
    gate[3 * hidden] = o;
    const T c = f * c_prev + i * g;
    c_next = c;
    h_next = o * tanh_of(c);
}

// Forward step for element `index`.
//   gates      in: input projection + bias; out: the activated gates (i, f, g, o), saved for
//              the backward step.
//   recurrent  the recurrent product h_prev @ W_hh.T, same layout as gates.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_forward_element(long long index, long long hidden, T* gates,
                                             const T* recurrent, const T* c_prev, T* c_next,
                                             T* h_next) {
    const long long at = gate_offset(index, hidden);
    lstm_forward_at(hidden, gates + at, recurrent + at, c_prev[index], c_next[index],
                    h_next[index]);
}

// Backward step of one element, given where its values are (as lstm_forward_at): `gate` points
// at its saved activation i (f, g, o follow `hidden` apart), which become the gradients with
// respect to the four pre-activations; `dc` in: the gradient reaching c_next, out: the one
// with respect to c_prev.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_backward_at(long long hidden, T* gate, const T dy, const T dh, T& dc,
                                         const T c_prev, const T c_next) {
    const T i = gate[0];
    const T f = gate[hidden];
    const T g = gate[2 * hidden];
    const T o = gate[3 * hidden];
    const T dh_total = dy + dh;
    const T tanh_c = tanh_of(c_next);
    const T dc_total = dc + dh_total * o * tanh_grad_from_output(tanh_c);
    gate[0] = dc_total * g * sigmoid_grad_from_output(i);
    gate[hidden] = dc_total * c_prev * sigmoid_grad_from_output(f);
    gate[2 * hidden] = dc_total * i * tanh_grad_from_output(g);
    gate[3 * hidden] = dh_total * tanh_c * sigmoid_grad_from_output(o);
    dc = dc_total * f;
}

// Backward step for element `index`.
//   gates   in: the activated gates saved by lstm_forward_element; out: the gradients with
//           respect to the four gate pre-activations.
//   dy, dh  gradients reaching h_next from this step's output and from the next step.
//   dc      in: gradient reaching c_next; out: gradient with respect to c_prev.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_backward_element(long long index, long long hidden, T* gates,
                                              const T* dy, const T* dh, T* dc, const T* c_prev,
                                              const T* c_next) {
    lstm_backward_at(hidden, gates + gate_offset(index, hidden), dy[index], dh[index], dc[index],
                     c_prev[index], c_next[index]);
}

// Peephole connections (Gers, Schraudolph and Schmidhuber 2002): i and f also see
// w_ci * c_prev and w_cf * c_prev, o sees w_co * c_next. `peephole` is the (3, H) block of rows
// (w_ci, w_cf, w_co); the other arguments are those of lstm_forward_element.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_peephole_forward_element(long long index, long long hidden,
                                                      T* gates, const T* recurrent,
                                                      const T* peephole, const T* c_prev,
                                                      T* c_next, T* h_next) {
    const long long at = gate_offset(index, hidden);
    const long long unit = index % hidden;
    T* gate = gates + at;
    const T* product = recurrent + at;
    const T c_before = c_prev[index];
    const T i = sigmoid(gate[0] + product[0] + peephole[unit] * c_before);
    const T f = sigmoid(gate[hidden] + product[hidden] + peephole[hidden + unit] * c_before);
    const T g = tanh_of(gate[2 * hidden] + product[2 * hidden]);
    const T c = f * c_before + i * g;
    const T o = sigmoid(gate[3 * hidden] + product[3 * hidden] + peephole[2 * hidden + unit] * c);
    gate[0] = i;
    gate[hidden] = f;
    gate[2 * hidden] = g;
    gate[3 * hidden] = o;
    c_next[index] = c;
    h_next[index] = o * tanh_of(c);
}

// Backward step of the peephole LSTM; arguments as lstm_backward_element, plus `peephole`.
// The o gate's pre-activation gradient also reaches c_next (through w_co), and those of i and
// f reach c_prev (through w_ci, w_cf). The peephole weights' own gradients are sums over steps
// and rows of these gate gradients times c_prev or c_next, taken after the loop.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_peephole_backward_element(long long index, long long hidden,
                                                       T* gates, const T* peephole, const T* dy,
                                                       const T* dh, T* dc, const T* c_prev,
                                                       const T* c_next) {
    const long long unit = index % hidden;
    T* gate = gates + gate_offset(index, hidden);
    const T i = gate[0];
    const T f = gate[hidden];
    const T g = gate[2 * hidden];
    const T o = gate[3 * hidden];
    const T dh_total = dy[index] + dh[index];
    const T tanh_c = tanh_of(c_next[index]);
    const T d_o = dh_total * tanh_c * sigmoid_grad_from_output(o);
    const T dc_total = dc[index] + dh_total * o * tanh_grad_from_output(tanh_c) +
                       d_o * peephole[2 * hidden + unit];
    const T d_i = dc_total * g * sigmoid_grad_from_output(i);
    const T d_f = dc_total * c_prev[index] * sigmoid_grad_from_output(f);
    gate[0] = d_i;
    gate[hidden] = d_f;
    gate[2 * hidden] = dc_total * i * tanh_grad_from_output(g);
    gate[3 * hidden] = d_o;
    dc[index] = dc_total * f + d_i * peephole[unit] + d_f * peephole[hidden + unit];
}

}  // namespace xplstm

#endif  // XPLSTM_LSTM_CUH
