// Mixed precision (METHOD.md, "Precision"): a chunk's float products are added into the double accumulators
// of the whole pass, so rounding errors of float sums do not grow with the number of chunks.
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

__kernel void add_float_into_double(const int count, __global const float* part, __global double* total)
{
    const int i = get_global_id(0);
    if (i < count) total[i] += (double)part[i];
}
