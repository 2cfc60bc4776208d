// Zoneout (Krueger et al. 2016) on a recurrent state, forward and backward: the one source of
// this math. It follows a cell's step: the cell computes the candidate state from the kept
// previous one, and zoneout blends the two, per element,
//     value = keep * previous + (1 - keep) * candidate,
// with keep a Bernoulli mask (1: the element keeps its previous value) in training and the
// zoneout probability itself in evaluation (the mask's expectation).
//
// Entry points take the element index and raw pointers (see lstm.cuh); `index` runs row-major
// over the C-contiguous (m, H) elements. The NumPy twin (xplstm/cells/zoneout.py) mirrors them.
#ifndef XPLSTM_ZONEOUT_CUH
#define XPLSTM_ZONEOUT_CUH

#ifndef XPLSTM_ACTIVATIONS_CUH
#include "activations.cuh"
#endif

namespace xplstm {

// Forward: `value` in: the candidate state; out: the blended state. With keep exactly 0 or 1
// the result is exactly the candidate or the previous value (for finite values).
template <typename T>
XPLSTM_HOST_DEVICE void zoneout_forward_element(long long index, const T* keep,
                                                const T* previous, T* value) {
    const T k = keep[index];
    value[index] = k * previous[index] + (T(1) - k) * value[index];
}

// Backward: `gradient` in: the gradient reaching the blended state; out: the part reaching the
// candidate. `carried` is written: the part reaching the previous state directly.
template <typename T>
XPLSTM_HOST_DEVICE void zoneout_backward_element(long long index, const T* keep, T* gradient,
                                                 T* carried) {
    const T k = keep[index];
    const T total = gradient[index];
    carried[index] = k * total;
    gradient[index] = (T(1) - k) * total;
}

}  // namespace xplstm

#endif  // XPLSTM_ZONEOUT_CUH
