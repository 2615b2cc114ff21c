// CLBlast's C API (BLAS on OpenCL buffers). Same OpenCL target version as COpenCL.
#define CL_TARGET_OPENCL_VERSION 120
#include <clblast_c.h>
