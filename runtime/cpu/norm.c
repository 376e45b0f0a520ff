/* norm.c - RMSNorm: out = x / sqrt(mean(x^2) + eps) * w. */
#include "cpu.h"

#include <math.h>

void kt_rmsnorm(float *out, const float *x, const kt_vec *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * (w ? kt_vec_at(w, i) : 1.0f);
}
