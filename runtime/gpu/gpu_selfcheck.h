/* gpu_selfcheck.h - what --backend auto asks of a device before it takes
 * it: a few of the kernels on small data against the CPU references, well
 * under a second. A device whose driver computes differently (fast math,
 * a broken compiler) fails it, and the model runs on the CPU instead. An
 * explicit --backend vulkan|metal is the user's choice and is not checked
 * here (the kernel tests, tests/gpu/, check a device fully). */
#ifndef KT_GPU_SELFCHECK_H
#define KT_GPU_SELFCHECK_H

#include "gpu_host.h"

/* 0 when the kernels agree; else -1 with kt_errmsg() naming the kernel,
 * the value and the device. */
int kt_gpu_self_check(const kt_gpu_host *h, kt_gpu *g);

#endif
