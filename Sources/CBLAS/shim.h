#include <cblas.h>
// OpenBLAS extras (declared in openblas_config.h/cblas.h): configuration string and thread count.
