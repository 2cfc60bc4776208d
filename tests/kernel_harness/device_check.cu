// Compile check for kernels/lstm_pointwise.cuh under nvcc: one __global__ per entry point and
// element type, each calling the header's functions the way the CuPy kernels do.
#include "lstm_pointwise.cuh"

template <typename T>
__global__ void forward_kernel(T* gates, const T* recurrent, const T* c_prev, T* c_next,
                               T* h_next, long long size, long long hidden) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < size;
         index += (long long)gridDim.x * blockDim.x) {
        const long long at = xplstm::gate_offset(index, hidden);
        xplstm::lstm_forward_point(gates + at, recurrent + at, hidden, c_prev[index],
                                   c_next[index], h_next[index]);
    }
}

template <typename T>
__global__ void backward_kernel(const T* dy, const T* dh, T* dc, T* gates, const T* c_prev,
                                const T* c_next, long long size, long long hidden) {
    for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < size;
         index += (long long)gridDim.x * blockDim.x) {
        const long long at = xplstm::gate_offset(index, hidden);
        xplstm::lstm_backward_point(gates + at, hidden, dy[index], dh[index], dc[index],
                                    c_prev[index], c_next[index]);
    }
}

template __global__ void forward_kernel<float>(float*, const float*, const float*, float*,
                                               float*, long long, long long);
template __global__ void forward_kernel<double>(double*, const double*, const double*, double*,
                                                double*, long long, long long);
template __global__ void backward_kernel<float>(const float*, const float*, float*, float*,
                                                const float*, const float*, long long, long long);
template __global__ void backward_kernel<double>(const double*, const double*, double*, double*,
                                                 const double*, const double*, long long,
                                                 long long);
