// CLBlast 1.5.3 reads its tuning parameters back only through its C++ API (clblast::RetrieveParameters); this one
// function makes that call reachable from Swift. It is Eddy's own code (no copy of CLBlast's).
#ifndef EDDY_CLBLAST_PARAMETERS_H
#define EDDY_CLBLAST_PARAMETERS_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/// Writes "NAME=VALUE NAME=VALUE …" (names sorted) for the parameters CLBlast applies to `kernel` ("Xgemm",
/// "GemmRoutine", …) in `precision` (32 single, 64 double) on `device` (a cl_device_id) — its database entry or an
/// override. Returns 0, CLBlast's status code when it fails, -1 when `capacity` is too small, -2 on a C++ exception.
int eddy_clblast_parameters(void *device, const char *kernel, int precision, char *out, size_t capacity);

#ifdef __cplusplus
}
#endif
#endif
