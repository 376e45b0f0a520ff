/* backend_gpu.h - the backend of backend.h on a GPU, through one of the
 * hosts of gpu_host.h (backend_gpu.c; docs/GPU.md). */
#ifndef KT_GPU_BACKEND_GPU_H
#define KT_GPU_BACKEND_GPU_H

#include "backend.h"
#include "gpu_host.h"

/* The backend on HOST's device WANT (gpu_host.h's open: NULL or "" the first
 * GPU; lavapipe only when named, "llvmpipe"); one device per process. NULL
 * with kt_errmsg() when none can be opened. */
const kt_backend *kt_gpu_backend(const kt_gpu_host *host, const char *want);

/* The host API names ("vulkan", "metal") when this build has it, else NULL
 * with kt_errmsg() saying why not. */
const kt_gpu_host *kt_gpu_host_named(const char *api);

/* --backend API: the host's device named by its variable
 * (KINTSUGI_VULKAN_DEVICE, KINTSUGI_METAL_DEVICE). NULL with
 * kt_errmsg(). */
const kt_backend *kt_gpu_open(const char *api);

/* --backend auto: Metal where there is a Metal device, else a Vulkan GPU
 * (never a CPU driver such as lavapipe), once the device has passed the
 * start-up self-check (gpu_selfcheck.h); else NULL (the CPU). *NOTE
 * (malloc'd, or NULL) says why a device that was there was not taken. */
const kt_backend *kt_gpu_auto(char **note);

/* What the backend has done with weights since the process started: bytes
 * imported from the mapped files without a copy and bytes copied (a MoE
 * layer's packed experts among them); matrices placed on the device and the
 * row chunks they took (more chunks than matrices: some were larger than
 * one binding). */
typedef struct {
    size_t imported, copied, matrices, chunks;
} kt_gpu_weight_stats;
kt_gpu_weight_stats kt_gpu_weights(void);

#endif
