// The OpenCL 1.2 C API through the ICD loader (ocl-icd). 1.2 is what every driver we meet offers;
// pinning the target version keeps newer headers from warning or hiding 1.2 entry points.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
