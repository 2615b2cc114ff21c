// The few MPI calls Eddy makes, as functions over plain C types. Swift cannot import MPI's handle macros
// (MPI_COMM_WORLD, MPI_DOUBLE, MPI_STATUS_IGNORE, …), and its handles are not Sendable: nothing here hands one out.
// Counts above INT_MAX (MPI counts are C int) are sent in slices. Every function returns MPI_SUCCESS or an error code.
#include <mpi.h>
#include <limits.h>
#include <stddef.h>

static const long eddy_mpi_slice = INT_MAX / 2;

static inline int eddy_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int eddy_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int eddy_mpi_finalize(void) { return MPI_Finalize(); }
static inline void eddy_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static inline int eddy_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int eddy_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

/// This rank among the ranks that share its machine (its node's shared-memory communicator).
static inline int eddy_mpi_local_rank(void) {
    MPI_Comm local;
    int r = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) != MPI_SUCCESS) return 0;
    MPI_Comm_rank(local, &r);
    MPI_Comm_free(&local);
    return r;
}

static inline int eddy_mpi_send(const double *values, long count, int dest, int tag) {
    for (long at = 0; at < count; at += eddy_mpi_slice) {
        long n = count - at < eddy_mpi_slice ? count - at : eddy_mpi_slice;
        int s = MPI_Send(values + at, (int)n, MPI_DOUBLE, dest, tag, MPI_COMM_WORLD);
        if (s != MPI_SUCCESS) return s;
    }
    return MPI_SUCCESS;
}

static inline int eddy_mpi_recv(double *values, long count, int source, int tag) {
    for (long at = 0; at < count; at += eddy_mpi_slice) {
        long n = count - at < eddy_mpi_slice ? count - at : eddy_mpi_slice;
        int s = MPI_Recv(values + at, (int)n, MPI_DOUBLE, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (s != MPI_SUCCESS) return s;
    }
    return MPI_SUCCESS;
}

static inline int eddy_mpi_bcast(double *values, long count, int root) {
    for (long at = 0; at < count; at += eddy_mpi_slice) {
        long n = count - at < eddy_mpi_slice ? count - at : eddy_mpi_slice;
        int s = MPI_Bcast(values + at, (int)n, MPI_DOUBLE, root, MPI_COMM_WORLD);
        if (s != MPI_SUCCESS) return s;
    }
    return MPI_SUCCESS;
}

/// Every rank's length (one long each), in rank order.
static inline int eddy_mpi_allgather_lengths(long mine, long *all) {
    return MPI_Allgather(&mine, 1, MPI_LONG, all, 1, MPI_LONG, MPI_COMM_WORLD);
}

/// Every rank's bytes (small: lengths within int), concatenated in rank order into `all`.
static inline int eddy_mpi_allgatherv_bytes(const unsigned char *mine, int count, unsigned char *all, const int *counts,
                                            const int *displacements) {
    return MPI_Allgatherv(mine, count, MPI_BYTE, all, counts, displacements, MPI_BYTE, MPI_COMM_WORLD);
}

static inline void eddy_mpi_error_string(int code, char *text, int capacity) {
    int length = 0;
    if (capacity < MPI_MAX_ERROR_STRING) { if (capacity > 0) text[0] = 0; return; }
    MPI_Error_string(code, text, &length);
    text[length] = 0;
}
static inline int eddy_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING + 1; }
