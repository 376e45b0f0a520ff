/* gpu_host.h - what a GPU API host (Vulkan: vulkan.c; Metal: metal.m) gives
 * the GPU backend (backend_gpu.c) and the kernel tests: a device, buffers
 * the host can write and read, and kernels recorded into one submission.
 *
 * The kernels are the same for every host (runtime/gpu/kernels/, compiled
 * to SPIR-V for Vulkan and translated from it to MSL for Metal), so is
 * their table below: name, number of storage buffers, threads per
 * workgroup. A host only differs in how it runs them.
 */
#ifndef KT_GPU_HOST_H
#define KT_GPU_HOST_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KT_GPU_QMV = 0, KT_GPU_MV_DENSE, KT_GPU_QROW, KT_GPU_RMSNORM, KT_GPU_MAMBA_CONV, KT_GPU_MAMBA_SSM, KT_GPU_MAMBA_GATE,
    KT_GPU_ATTEND, KT_GPU_EWISE, KT_GPU_QMM, KT_GPU_DROW, KT_GPU_MOE_ROUTE, KT_GPU_QMV_EXPERT, KT_GPU_MV_DENSE_EXPERT,
    KT_GPU_WEIGH, KT_GPU_MM_DENSE, KT_GPU_KERNELS
} kt_gpu_kernel;

/* The kernels every host builds: KT_GPU_KERNELS entries in kt_gpu_kernel's
 * order. threads: the workgroup size the .comp file declares (gpu_abi.h);
 * a Metal dispatch has to name it. */
typedef struct {
    const char *name; /* runtime/gpu/kernels/NAME.comp, entry point kt_NAME in MSL */
    int n_buffers;    /* storage buffers, bound from 1 up */
    uint32_t threads;
} kt_gpu_kernel_info;
extern const kt_gpu_kernel_info kt_gpu_kernels[KT_GPU_KERNELS];

typedef struct kt_gpu kt_gpu; /* one opened device, the host's own */

/* A buffer both the device and the host can reach, mapped for its whole
 * life: Vulkan host-visible coherent memory, a Metal shared buffer. */
typedef struct {
    void *map;
    size_t size;
    void *handle; /* the host's own state */
} kt_gpu_buffer;

typedef struct {
    const char *api;        /* "vulkan", "metal": --backend's name */
    const char *device_env; /* the variable naming the device: KINTSUGI_VULKAN_DEVICE, ... */
    /* 1 when the machine may have a GPU for this API; --backend auto asks
     * this first, so that a machine without one never starts a driver */
    int (*present)(void);
    /* Open a device. WANT: NULL or "" the first GPU (a CPU implementation
     * such as lavapipe is never picked by default), a number picks that
     * device, anything else the first device whose name contains it. NULL
     * with kt_errmsg() when none fits. */
    kt_gpu *(*open)(const char *want);
    void (*close)(kt_gpu *g);
    const char *(*device_name)(const kt_gpu *g);
    uint32_t (*simd_width)(const kt_gpu *g); /* subgroup / simdgroup size: lavapipe 8, Apple 32 */
    int (*buffer_new)(kt_gpu *g, size_t size, kt_gpu_buffer *out);
    void (*buffer_free)(kt_gpu *g, kt_gpu_buffer *b);
    /* The most bytes one buffer may have and still be bound whole: Vulkan's
     * maxStorageBufferRange (128 MiB on lavapipe, a 9B model's lm_head is
     * more), Metal's maxBufferLength. The backend splits a larger tensor
     * by rows. */
    size_t (*max_binding)(const kt_gpu *g);
    /* The caller's memory as a buffer, without a copy (the mapped model
     * files): SIZE bytes at P, both multiples of import_alignment(), which is
     * 0 when the device cannot import at all. The device only reads it
     * (map is P); the memory must outlive the buffer. -1 with kt_errmsg()
     * when this memory cannot be imported: the caller copies it instead. */
    size_t (*import_alignment)(const kt_gpu *g);
    int (*buffer_import)(kt_gpu *g, const void *p, size_t size, kt_gpu_buffer *out);
    /* Record KERNEL into the open command buffer (opened if needed), ordered
     * after everything recorded before it; nothing runs until submit(),
     * which runs it all as one submission, waits, and makes every result
     * visible to the host. BUFFERS are bound in order from 1 up, ARGS
     * (a gpu_abi.h struct) at KT_GPU_ARGS_INDEX; GROUPS_X x GROUPS_Y
     * workgroups. 0, or -1 with kt_errmsg(). */
    int (*record)(kt_gpu *g, kt_gpu_kernel kernel, const kt_gpu_buffer *const *buffers, int n_buffers, const void *args,
                  size_t args_size, uint32_t groups_x, uint32_t groups_y);
    int (*submit)(kt_gpu *g);
} kt_gpu_host;

/* The hosts this build has (NULL: not built in). */
const kt_gpu_host *kt_gpu_vulkan(void);
const kt_gpu_host *kt_gpu_metal(void);

/* Run one kernel by itself and wait (the kernel tests): submit what is
 * recorded, record KERNEL, submit. */
int kt_gpu_run(const kt_gpu_host *h, kt_gpu *g, kt_gpu_kernel kernel, const kt_gpu_buffer *const *buffers, int n_buffers,
               const void *args, size_t args_size, uint32_t groups_x, uint32_t groups_y);

#endif
