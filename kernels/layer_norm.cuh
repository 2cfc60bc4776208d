// Layer normalization (Ba, Kiros and Hinton 2016) and the LayerNorm LSTM step of its section
// 3.1, forward and backward: the one source of this math.
//
//   (i, f, g, o) = LN(W_ih x_t; a_x, b_x) + LN(W_hh h_{t-1}; a_h, b_h) + bias
//   c_t = f * c_{t-1} + i * g,    h_t = o * tanh(LN(c_t; a_c, b_c))
//
// LN(v; a, b) = a * (v - mean(v)) / sqrt(var(v) + eps) + b over the whole row of v: the 4H
// gate pre-activations or the H cell features of one sequence. The row statistics are the
// `_row` functions (one call per row: `row` indexes C-contiguous (rows, width) blocks); the
// rest are per-element functions as in lstm.cuh. The NumPy twin (xplstm/cells/layer_norm.py)
// mirrors them.
#ifndef XPLSTM_LAYER_NORM_CUH
#define XPLSTM_LAYER_NORM_CUH

#ifndef XPLSTM_ACTIVATIONS_CUH
#include "activations.cuh"
#endif

namespace xplstm {

// 1 / sqrt for each element type, spelled so that no overload set is needed.
XPLSTM_HOST_DEVICE float reciprocal_sqrt_of(float x) { return 1.0f / sqrtf(x); }
XPLSTM_HOST_DEVICE double reciprocal_sqrt_of(double x) { return 1.0 / sqrt(x); }

// The epsilon inside the square root (the paper's and torch's LayerNorm default).
template <typename T>
XPLSTM_HOST_DEVICE T layer_norm_epsilon() {
    return T(1e-5);
}

// Statistics of one row of x (rows, width), two passes: mean[row] and the reciprocal standard
// deviation rstd[row] = 1 / sqrt(mean((x - mean)^2) + eps).
template <typename T>
XPLSTM_HOST_DEVICE void layer_norm_statistics_row(long long row, long long width, const T* x,
                                                  T* mean, T* rstd) {
    const T* values = x + row * width;
    T sum = T(0);
    for (long long k = 0; k < width; ++k) sum += values[k];
    const T average = sum / T(width);
    T squares = T(0);
    for (long long k = 0; k < width; ++k) {
        const T centered = values[k] - average;
        squares += centered * centered;
    }
    mean[row] = average;
    rstd[row] = reciprocal_sqrt_of(squares / T(width) + layer_norm_epsilon<T>());
}

// Normalize element `index` of a (rows, width) block in place: x_hat = (value - mean) * rstd
// (written to x_hat, saved for backward) and value = gain * x_hat + shift, gain and shift per
// column.
template <typename T>
XPLSTM_HOST_DEVICE void layer_norm_forward_element(long long index, long long width,
                                                   const T* mean, const T* rstd, const T* gain,
                                                   const T* shift, T* x_hat, T* value) {
    const long long row = index / width;
    const long long column = index % width;
    const T normalized = (value[index] - mean[row]) * rstd[row];
    x_hat[index] = normalized;
    value[index] = gain[column] * normalized + shift[column];
}

// The row means of a gradient d_hat with respect to x_hat and of d_hat * x_hat, which the
// layer-norm backward subtracts.
template <typename T>
XPLSTM_HOST_DEVICE void layer_norm_backward_statistics_row(long long row, long long width,
                                                           const T* d_hat, const T* x_hat,
                                                           T* mean_d, T* mean_dx) {
    const long long start = row * width;
    T sum = T(0);
    T sum_x = T(0);
    for (long long k = 0; k < width; ++k) {
        sum += d_hat[start + k];
        sum_x += d_hat[start + k] * x_hat[start + k];
    }
    mean_d[row] = sum / T(width);
    mean_dx[row] = sum_x / T(width);
}

// Layer-norm backward for element `index`: gradient in: d_hat (with respect to x_hat); out:
// the gradient with respect to the normalized input, rstd * (d_hat - mean_d - x_hat * mean_dx).
template <typename T>
XPLSTM_HOST_DEVICE void layer_norm_backward_element(long long index, long long width,
                                                    const T* x_hat, const T* rstd,
                                                    const T* mean_d, const T* mean_dx,
                                                    T* gradient) {
    const long long row = index / width;
    gradient[index] = rstd[row] * (gradient[index] - mean_d[row] - x_hat[index] * mean_dx[row]);
}

// Position of gate 0 of element `index` of an (m, H) block in the (m, 4H) gate block.
XPLSTM_HOST_DEVICE long long layer_norm_gate_offset(long long index, long long hidden) {
    return (index / hidden) * 4 * hidden + index % hidden;
}

// LayerNorm LSTM forward, first half, for element `index` of (m, H):
//   gates      in: LN(W_ih x_t) + bias; out: the activated gates (i, f, g, o).
//   recurrent  in: W_hh h_{t-1}; out: its normalized values (saved for backward), with the
//              row statistics mean_h, rstd_h of the whole 4H row (layer_norm_statistics_row).
//   c_next = f * c_prev + i * g  (before its own normalization).
template <typename T>
XPLSTM_HOST_DEVICE void lstm_layer_norm_gates_element(long long index, long long hidden,
                                                      const T* mean_h, const T* rstd_h,
                                                      const T* gain_h, const T* shift_h,
                                                      const T* c_prev, T* gates, T* recurrent,
                                                      T* c_next) {
    const long long row = index / hidden;
    const long long unit = index % hidden;
    const long long at = layer_norm_gate_offset(index, hidden);
    T pre[4];
    for (int k = 0; k < 4; ++k) {
        const long long gate = at + k * hidden;
        const T normalized = (recurrent[gate] - mean_h[row]) * rstd_h[row];
        recurrent[gate] = normalized;
        pre[k] = gates[gate] + gain_h[k * hidden + unit] * normalized + shift_h[k * hidden + unit];
    }
    const T i = sigmoid(pre[0]);
    const T f = sigmoid(pre[1]);
    const T g = tanh_of(pre[2]);
    const T o = sigmoid(pre[3]);
    gates[at] = i;
    gates[at + hidden] = f;
    gates[at + 2 * hidden] = g;
    gates[at + 3 * hidden] = o;
    c_next[index] = f * c_prev[index] + i * g;
}

// LayerNorm LSTM forward, second half: with the statistics mean_c, rstd_c of c_next's rows,
// c_hat = (c_next - mean_c) * rstd_c (saved) and h_next = o * tanh(gain_c * c_hat + shift_c).
template <typename T>
XPLSTM_HOST_DEVICE void lstm_layer_norm_output_element(long long index, long long hidden,
                                                       const T* gates, const T* c_next,
                                                       const T* mean_c, const T* rstd_c,
                                                       const T* gain_c, const T* shift_c,
                                                       T* c_hat, T* h_next) {
    const long long row = index / hidden;
    const long long unit = index % hidden;
    const T o = gates[layer_norm_gate_offset(index, hidden) + 3 * hidden];
    const T normalized = (c_next[index] - mean_c[row]) * rstd_c[row];
    c_hat[index] = normalized;
    h_next[index] = o * tanh_of(gain_c[unit] * normalized + shift_c[unit]);
}

// LayerNorm LSTM backward, first part, for element `index`:
//   dy, dh  gradients reaching h_next from this step's output and from the next step.
//   gates   in: the activated gates; out: o's slot becomes d_o, o's pre-activation gradient.
//   d_n     written: the gradient at n = gain_c * c_hat + shift_c (summed for a_c and b_c).
//   d_c_hat written: the gradient at c_hat, gain_c * d_n (its row means come next).
template <typename T>
XPLSTM_HOST_DEVICE void lstm_layer_norm_output_backward_element(
    long long index, long long hidden, const T* c_hat, const T* gain_c, const T* shift_c,
    const T* dy, const T* dh, T* gates, T* d_n, T* d_c_hat) {
    const long long unit = index % hidden;
    T* o_slot = gates + layer_norm_gate_offset(index, hidden) + 3 * hidden;
    const T o = *o_slot;
    const T dh_total = dy[index] + dh[index];
    const T tanh_n = tanh_of(gain_c[unit] * c_hat[index] + shift_c[unit]);
    *o_slot = dh_total * tanh_n * sigmoid_grad_from_output(o);
    const T dn = dh_total * o * tanh_grad_from_output(tanh_n);
    d_n[index] = dn;
    d_c_hat[index] = gain_c[unit] * dn;
}

// LayerNorm LSTM backward, second part, for element `index`: the gradient at c_next is dc (in,
// from the next step) plus the cell normalization's rstd_c * (d_c_hat - mean_d - c_hat *
// mean_dx); then the gates i, f, g to their pre-activation gradients, dc to dc_prev, and
// d_recurrent to the gradient at the normalized recurrent values, gain_h * d_pre.
template <typename T>
XPLSTM_HOST_DEVICE void lstm_layer_norm_gates_backward_element(
    long long index, long long hidden, const T* c_hat, const T* rstd_c, const T* d_c_hat,
    const T* mean_d, const T* mean_dx, const T* c_prev, const T* gain_h, T* gates, T* dc,
    T* d_recurrent) {
    const long long row = index / hidden;
    const long long unit = index % hidden;
    const long long at = layer_norm_gate_offset(index, hidden);
    const T i = gates[at];
    const T f = gates[at + hidden];
    const T g = gates[at + 2 * hidden];
    const T dc_total =
        dc[index] + rstd_c[row] * (d_c_hat[index] - mean_d[row] - c_hat[index] * mean_dx[row]);
    gates[at] = dc_total * g * sigmoid_grad_from_output(i);
    gates[at + hidden] = dc_total * c_prev[index] * sigmoid_grad_from_output(f);
    gates[at + 2 * hidden] = dc_total * i * tanh_grad_from_output(g);
    dc[index] = dc_total * f;
    for (int k = 0; k < 4; ++k) {
        d_recurrent[at + k * hidden] = gain_h[k * hidden + unit] * gates[at + k * hidden];
    }
}

}  // namespace xplstm

#endif  // XPLSTM_LAYER_NORM_CUH
