/* gpu_kernels.c - the kernel table every GPU host builds (gpu_host.h), and
 * running one kernel by itself. */
#include "gpu_host.h"
#include "gpu_abi.h"

const kt_gpu_kernel_info kt_gpu_kernels[KT_GPU_KERNELS] = {
    [KT_GPU_QMV] = {"qmv", 5, KT_QMV_THREADS},
    [KT_GPU_MV_DENSE] = {"mv_dense", 3, KT_MV_DENSE_THREADS},
    [KT_GPU_QROW] = {"qrow", 4, KT_QROW_THREADS},
    [KT_GPU_RMSNORM] = {"rmsnorm", 3, KT_RMSNORM_THREADS},
    [KT_GPU_MAMBA_CONV] = {"mamba_conv", 5, KT_MAMBA_THREADS},
    [KT_GPU_MAMBA_SSM] = {"mamba_ssm", 5, KT_MAMBA_THREADS},
    [KT_GPU_MAMBA_GATE] = {"mamba_gate", 3, KT_MAMBA_THREADS},
    [KT_GPU_ATTEND] = {"attend", 5, KT_ATTEND_THREADS},
    [KT_GPU_EWISE] = {"ewise", 2, KT_EWISE_THREADS},
    [KT_GPU_QMM] = {"qmm", 5, KT_QMV_THREADS},
    [KT_GPU_DROW] = {"drow", 2, KT_QROW_THREADS},
    [KT_GPU_MOE_ROUTE] = {"moe_route", 5, KT_MOE_ROUTE_THREADS},
    [KT_GPU_QMV_EXPERT] = {"qmv_expert", 6, KT_QMV_THREADS},
    [KT_GPU_MV_DENSE_EXPERT] = {"mv_dense_expert", 4, KT_MV_DENSE_THREADS},
    [KT_GPU_WEIGH] = {"weigh", 3, KT_EWISE_THREADS},
    [KT_GPU_MM_DENSE] = {"mm_dense", 3, KT_MV_DENSE_THREADS},
};

int kt_gpu_run(const kt_gpu_host *h, kt_gpu *g, kt_gpu_kernel kernel, const kt_gpu_buffer *const *buffers, int n_buffers,
               const void *args, size_t args_size, uint32_t groups_x, uint32_t groups_y) {
    if (h->submit(g)) return -1; /* nothing recorded before is left behind */
    return h->record(g, kernel, buffers, n_buffers, args, args_size, groups_x, groups_y) || h->submit(g) ? -1 : 0;
}
