/* vulkan.h - the Vulkan host of the GPU kernels (runtime/gpu/kernels/):
 * device choice, buffers, one compute pipeline per kernel from the SPIR-V
 * embedded at build time, and dispatches.
 *
 * kt_vk_run() runs one kernel by itself (the kernel tests); kt_vk_record()
 * and kt_vk_submit() put a whole token into one command buffer (the
 * backend, backend_vulkan.c).
 */
#ifndef KT_GPU_VULKAN_H
#define KT_GPU_VULKAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct kt_vk kt_vk;

typedef enum {
    KT_GPU_QMV = 0, KT_GPU_MV_DENSE, KT_GPU_QROW, KT_GPU_RMSNORM, KT_GPU_MAMBA_CONV, KT_GPU_MAMBA_SSM, KT_GPU_MAMBA_GATE,
    KT_GPU_ATTEND, KT_GPU_EWISE, KT_GPU_QMM, KT_GPU_DROW, KT_GPU_KERNELS
} kt_gpu_kernel;

/* A host-visible, coherent storage buffer, mapped for its whole life. */
typedef struct {
    void *map;
    size_t size;
    void *handle; /* the host's own state */
} kt_vk_buffer;

/* Open a device. WANT is KINTSUGI_VULKAN_DEVICE's syntax: NULL or "" picks
 * the first GPU (a CPU implementation such as lavapipe is never picked by
 * default), a number picks that device, anything else the first device whose
 * name contains it ("llvmpipe"). NULL with kt_errmsg() when none fits. */
kt_vk *kt_vk_open(const char *want);
void kt_vk_close(kt_vk *vk);
/* 1 when the machine may have a GPU for Vulkan: a GPU device node (Linux:
 * /dev/dri/renderD*, /dev/nvidia0), or the loader pointed at a driver
 * (VK_ICD_FILENAMES, VK_DRIVER_FILES). --backend auto asks this first, so
 * that a machine without a GPU never starts a Vulkan driver. */
int kt_vk_gpu_driver_present(void);
/* "llvmpipe (LLVM 15.0.6, 256 bits)" */
const char *kt_vk_device_name(const kt_vk *vk);
/* The device's subgroup size (lavapipe 8, Apple 32, AMD 32 or 64). */
uint32_t kt_vk_subgroup_size(const kt_vk *vk);

int kt_vk_buffer_new(kt_vk *vk, size_t size, kt_vk_buffer *out);
void kt_vk_buffer_free(kt_vk *vk, kt_vk_buffer *b);

/* Record KERNEL into the open command buffer (opened if needed), after a
 * barrier on everything recorded before it; nothing runs until
 * kt_vk_submit(), which runs it all as one submission, waits, and makes
 * every result visible to the host. Arguments as kt_vk_run(). */
int kt_vk_record(kt_vk *vk, kt_gpu_kernel kernel, const kt_vk_buffer *const *buffers, int n_buffers, const void *args,
                 size_t args_size, uint32_t groups_x, uint32_t groups_y);
int kt_vk_submit(kt_vk *vk);

/* Run KERNEL once over GROUPS_X x GROUPS_Y workgroups with BUFFERS bound in
 * order from binding 1 (gpu_abi.h) and ARGS as its push constants; waits for
 * the result. 0, or -1 with kt_errmsg(). */
int kt_vk_run(kt_vk *vk, kt_gpu_kernel kernel, const kt_vk_buffer *const *buffers, int n_buffers, const void *args,
              size_t args_size, uint32_t groups_x, uint32_t groups_y);

#endif
