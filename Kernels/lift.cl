// The dictionary on the device (METHOD.md, "Dictionary"): for each window z of a chunk, the row
// [1, z, phi(z), u, 0...] with phi(z) = sigma(zW + b), written twice when asked: `sources` with the row scaled by its
// mask (1 for a pair source, 0 for a row that only serves as a target or pads the chunk), and `full`
// unscaled (the Koopman form's targets Psi_{t+1}), `shift` rows up: with shift 1, row t of `full` is the lifted row
// t + 1, so the GEMM reads its targets at offset 0 (CLBlast copies an operand at a non-zero offset into a padded
// temporary on every call) and row 0 is not written. Rows are `ld` values long (the padded feature count).
//
// Built with -DEDDY_DOUBLE for double precision, without it for float.

#ifdef EDDY_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
#else
typedef float real;
#endif

#define ACTIVATION_TANH 0
#define TILE 64            // rows and hidden columns per work-group
#define TK 16              // window values staged per step
#define LS 16              // work-items per dimension (16 x 16 = 256)
#define WPT (TILE / LS)    // outputs per work-item per dimension (4 x 4 = 16 accumulators)

// phi for one 64 x 64 tile of (rows x hidden columns). The window tile (64 x 16) and the weight tile (16 x 64)
// are staged in local memory, so each value read from global memory serves 64 products; each work-item keeps
// a 4 x 4 block of accumulators. Work-item (tx, ty) owns columns tx + 16j and rows ty + 16i: neighbouring
// work-items write neighbouring columns, so stores to the row-major dictionary coalesce.
__kernel __attribute__((reqd_work_group_size(LS, LS, 1)))
void lift_hidden(const int rows, const int p, const int width, const int activation, const int ld,
                 __global const real* z,        // rows x p
                 __global const real* w,        // p x width
                 __global const real* bias,     // width
                 __global const real* mask,     // rows
                 __global real* sources,        // rows x ld, masked
                 __global real* full,           // rows x ld, unmasked (written when write_full), `shift` rows up
                 const int write_full, const int shift)
{
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int col0 = get_group_id(0) * TILE, row0 = get_group_id(1) * TILE;
    const int item = ty * LS + tx;
    __local real zs[TILE][TK + 1];   // +1: no bank conflicts when a column is read across rows
    __local real ws[TK][TILE];

    real acc[WPT][WPT];
    for (int i = 0; i < WPT; i++)
        for (int j = 0; j < WPT; j++) acc[i][j] = 0;

    for (int k0 = 0; k0 < p; k0 += TK) {
        for (int l = 0; l < (TILE * TK) / (LS * LS); l++) {
            const int e = item + l * LS * LS;
            const int zr = e / TK, zk = e % TK;
            const int gr = row0 + zr, gk = k0 + zk;
            zs[zr][zk] = (gr < rows && gk < p) ? z[(size_t)gr * p + gk] : (real)0;
            const int wk = e / TILE, wc = e % TILE;
            const int gwk = k0 + wk, gc = col0 + wc;
            ws[wk][wc] = (gwk < p && gc < width) ? w[gwk * width + gc] : (real)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TK; k++) {
            real wv[WPT];
            for (int j = 0; j < WPT; j++) wv[j] = ws[k][tx + j * LS];
            for (int i = 0; i < WPT; i++) {
                const real zv = zs[ty + i * LS][k];
                for (int j = 0; j < WPT; j++) acc[i][j] = fma(zv, wv[j], acc[i][j]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int i = 0; i < WPT; i++) {
        const int r = row0 + ty + i * LS;
        if (r >= rows) continue;
        const real m = mask[r];
        for (int j = 0; j < WPT; j++) {
            const int c = col0 + tx + j * LS;
            if (c >= width) continue;
            const real a = acc[i][j] + bias[c];
            const real v = activation == ACTIVATION_TANH ? tanh(a) : fmax(a, (real)0);
            const size_t o = (size_t)r * ld + 1 + p + c;   // 64-bit: rows x ld may pass 2^31
            sources[o] = m * v;
            if (write_full && r >= shift) full[o - (size_t)shift * ld] = v;
        }
    }
}

// Every column outside the hidden block: the constant 1, the window z, the inputs u and the zero padding.
// Column c of the frame maps to dictionary column c for c <= p, and to 1 + p + width + (c - 1 - p) after.
__kernel void lift_frame(const int rows, const int p, const int width, const int inputs, const int ld,
                         __global const real* z,        // rows x p
                         __global const real* u,        // rows x inputs
                         __global const real* mask,     // rows
                         __global real* sources,
                         __global real* full,
                         const int write_full, const int shift)
{
    const int c = get_global_id(0), r = get_global_id(1);
    const int frame = ld - width;
    if (r >= rows || c >= frame) return;
    const int col = c <= p ? c : width + c;
    real v = 0;
    if (col == 0) v = 1;
    else if (col <= p) v = z[(size_t)r * p + col - 1];
    else if (col - 1 - p - width < inputs) v = u[(size_t)r * inputs + (col - 1 - p - width)];
    const size_t o = (size_t)r * ld + col;
    sources[o] = mask[r] * v;
    if (write_full && r >= shift) full[o - (size_t)shift * ld] = v;
}
