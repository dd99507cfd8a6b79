#pragma once
#include <stdint.h>

/// log(Σ exp(x[i])) over n floats, computed stably (max subtracted first). A polynomial exp
/// the compiler vectorizes: relative error about 2e-7 per term.
float lk_logsumexp(const float *x, int64_t n);

/// The index of the largest of x[0..n) (n >= 1), the first if it occurs more than once; NaNs
/// are never the largest, and a NaN in x[0] gives 0 (a scalar scan with `>` in plain order).
int64_t lk_argmax(const float *x, int64_t n);

/// The first j in [i, n) with !(x[j] <= thr) (greater, or NaN), or n: the candidates a top-k
/// scan that already holds k values, the smallest thr, has to look at.
int64_t lk_first_above(const float *x, int64_t i, int64_t n, float thr);
