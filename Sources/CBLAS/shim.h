#pragma once
// OpenBLAS (Debian's pthread build): cblas_* and openblas_set_num_threads.
#include <cblas.h>
