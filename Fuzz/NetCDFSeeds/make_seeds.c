/* Writes the seed corpus of FuzzNetCDF with libnetcdf itself: the same small field in CDF-1, CDF-2 and CDF-5, and a
 * CDF-1 file without records. Usage (from the repository root):
 *   cc Fuzz/NetCDFSeeds/make_seeds.c -lnetcdf -o /tmp/make_seeds && /tmp/make_seeds Fuzz/corpus/FuzzNetCDF
 */
#include <netcdf.h>
#include <stdio.h>
#include <stdlib.h>

#define OK(x) do { int s_ = (x); if (s_ != NC_NOERR) { fprintf(stderr, "%s: %s\n", #x, nc_strerror(s_)); exit(1); } } while (0)

static void field(const char *path, int mode) {
    int nc, time, lat, lon, tv, latv, lonv, t, s;
    OK(nc_create(path, NC_CLOBBER | mode, &nc));
    OK(nc_def_dim(nc, "time", NC_UNLIMITED, &time));
    OK(nc_def_dim(nc, "lat", 2, &lat));
    OK(nc_def_dim(nc, "lon", 3, &lon));
    OK(nc_put_att_text(nc, NC_GLOBAL, "title", 4, "seed"));
    OK(nc_def_var(nc, "time", NC_DOUBLE, 1, &time, &tv));
    OK(nc_put_att_text(nc, tv, "units", 30, "hours since 2000-01-01 00:00:00"));
    OK(nc_def_var(nc, "lat", NC_FLOAT, 1, &lat, &latv));
    OK(nc_def_var(nc, "lon", NC_DOUBLE, 1, &lon, &lonv));
    int dims[3] = {time, lat, lon};
    OK(nc_def_var(nc, "t", NC_DOUBLE, 3, dims, &t));
    double fill = -999;
    OK(nc_put_att_double(nc, t, "_FillValue", NC_DOUBLE, 1, &fill));
    OK(nc_def_var(nc, "s", NC_SHORT, 1, &time, &s));
    double scale = 0.5;
    OK(nc_put_att_double(nc, s, "scale_factor", NC_DOUBLE, 1, &scale));
    OK(nc_enddef(nc));
    float lats[2] = {10, 20};
    double lons[3] = {0, 5, 10};
    OK(nc_put_var_float(nc, latv, lats));
    OK(nc_put_var_double(nc, lonv, lons));
    for (size_t n = 0; n < 4; n++) {
        double h = (double)n, values[6];
        short v = (short)n;
        for (int i = 0; i < 6; i++) values[i] = 100.0 * n + i;
        if (n == 2) values[4] = fill;
        size_t start[3] = {n, 0, 0}, count[3] = {1, 2, 3};
        OK(nc_put_vara_double(nc, tv, start, count, &h));
        OK(nc_put_vara_double(nc, t, start, count, values));
        OK(nc_put_vara_short(nc, s, start, count, &v));
    }
    OK(nc_close(nc));
}

static void fixed(const char *path) {
    int nc, time, x, tv, h;
    OK(nc_create(path, NC_CLOBBER, &nc));
    OK(nc_def_dim(nc, "time", 5, &time));
    OK(nc_def_dim(nc, "x", 2, &x));
    OK(nc_def_var(nc, "time", NC_INT, 1, &time, &tv));
    int dims[2] = {time, x};
    OK(nc_def_var(nc, "h", NC_BYTE, 2, dims, &h));
    OK(nc_enddef(nc));
    int times[5] = {0, 1, 2, 3, 4};
    signed char values[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    OK(nc_put_var_int(nc, tv, times));
    OK(nc_put_var_schar(nc, h, values));
    OK(nc_close(nc));
}

int main(int argc, char **argv) {
    char path[4096];
    const char *dir = argc > 1 ? argv[1] : ".";
    snprintf(path, sizeof path, "%s/cdf1.nc", dir); field(path, 0);
    snprintf(path, sizeof path, "%s/cdf2.nc", dir); field(path, NC_64BIT_OFFSET);
    snprintf(path, sizeof path, "%s/cdf5.nc", dir); field(path, NC_64BIT_DATA);
    snprintf(path, sizeof path, "%s/fixed.nc", dir); fixed(path);
    return 0;
}
