/* backend_vulkan.h - the backend of backend.h on a Vulkan device
 * (backend_vulkan.c; docs/GPU.md). */
#ifndef KT_GPU_BACKEND_VULKAN_H
#define KT_GPU_BACKEND_VULKAN_H

#include "backend.h"

/* The backend on the device WANT names (vulkan.h's kt_vk_open: NULL or ""
 * the first GPU; lavapipe only when named, "llvmpipe"); one device per
 * process. NULL with kt_errmsg() when none can be opened. */
const kt_backend *kt_vulkan_backend(const char *want);

/* 0 when the backend can run M, else -1 with kt_errmsg() (MoE layers). */
int kt_vulkan_model_ok(const kt_model *m);

#endif
