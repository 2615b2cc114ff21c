// Mixed precision (METHOD.md, "Precision"): a chunk's float products are added into the double accumulators
// of the whole pass, so rounding errors of float sums do not grow with the number of chunks.
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

__kernel void add_float_into_double(const int count, __global const float* part, __global double* total)
{
    const int i = get_global_id(0);
    if (i < count) total[i] += (double)part[i];
}

// The device solve (DeviceSolve.swift): a[i][i] += lambda for the first `features` diagonal entries of an ld x ld
// matrix and += 1 for the padding (its rows and columns are zero, so the padded block becomes the identity).
__kernel void add_to_diagonal(const int features, const int ld, const double lambda, __global double* a)
{
    const int i = get_global_id(0);
    if (i < ld) a[(size_t)i * ld + i] += i < features ? lambda : 1.0;
}
