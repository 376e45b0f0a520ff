/* metal.m - the Metal host of the GPU kernels (gpu_host.h), built on macOS
 * only: device choice, shared buffers, one compute pipeline per kernel from
 * the MSL that spirv-cross made of its SPIR-V at build time, dispatches
 * encoded into one command buffer per submission; the mapped model wrapped
 * without a copy (newBufferWithBytesNoCopy) where its pages allow.
 *
 * It is written against Metal's documented API and compiled on Linux only
 * as far as a syntax check against declarations of that API allows
 * (tests/gpu/metal_syntax.sh); it runs where macOS runs it. docs/GPU.md
 * says what has and has not been tried.
 *
 * Objective-C with manual reference counting (-fno-objc-arc): every object
 * this file makes with new... or retains is released in close() or
 * buffer_free(); objects Metal hands back autoreleased (command buffers,
 * encoders, names) are retained while in use, and each entry point drains
 * its own autorelease pool, because its callers are C code that has none.
 */
#include "gpu_host.h"
#include "gpu_abi.h"
#include "error.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

/* the MSL of each kernel, embedded at build time (build/.../gpu/kernels_msl.c) */
extern const unsigned char kt_msl_qmv[], kt_msl_mv_dense[], kt_msl_qrow[], kt_msl_rmsnorm[], kt_msl_mamba_conv[],
    kt_msl_mamba_ssm[], kt_msl_mamba_gate[], kt_msl_attend[], kt_msl_ewise[], kt_msl_qmm[], kt_msl_drow[],
    kt_msl_moe_route[], kt_msl_qmv_expert[], kt_msl_mv_dense_expert[], kt_msl_weigh[], kt_msl_mm_dense[];

/* in kt_gpu_kernel's order */
static const unsigned char *const MSL[KT_GPU_KERNELS] = {
    kt_msl_qmv,        kt_msl_mv_dense,   kt_msl_qrow,         kt_msl_rmsnorm,          kt_msl_mamba_conv,
    kt_msl_mamba_ssm,  kt_msl_mamba_gate, kt_msl_attend,       kt_msl_ewise,            kt_msl_qmm,
    kt_msl_drow,       kt_msl_moe_route,  kt_msl_qmv_expert,   kt_msl_mv_dense_expert,  kt_msl_weigh,
    kt_msl_mm_dense,
};

/* Arguments are passed as Vulkan passes push constants: a block of this
 * size, zero past the kernel's own struct, so both hosts give a kernel the
 * same bytes. */
enum { MAX_BUFFERS = 8, MAX_ARGS = 128 };

struct kt_gpu {
    id<MTLDevice> device;
    id<MTLCommandQueue> queue;
    id<MTLComputePipelineState> pipelines[KT_GPU_KERNELS];
    id<MTLCommandBuffer> cb;            /* the commands encoded since the last submit, or nil */
    id<MTLComputeCommandEncoder> enc;   /* cb's one encoder */
    char name[256];
    uint32_t simd_width;
};

/* ---- device choice ---- */

/* The kernels reduce through threadgroup memory and read no simdgroup
 * functions, yet GPUs older than these families and the paravirtual
 * devices of virtual Macs are reported to give wrong results on compute
 * work of this kind (docs/GPU.md): refuse them, with a line that says so,
 * rather than generate from numbers no test has seen there. */
static int family_is_supported(id<MTLDevice> d) {
    return [d supportsFamily:MTLGPUFamilyApple7] || [d supportsFamily:MTLGPUFamilyMetal3];
}

/* The device WANT names (gpu_host.h: NULL or "" the system default, a
 * number that device, else the first whose name contains WANT), retained,
 * or nil. *N is set to the number of devices. */
static id<MTLDevice> choose_device(const char *want, unsigned *n) {
    NSArray *all = MTLCopyAllDevices(); /* a +1 reference: released below */
    *n = (unsigned)[all count];
    id<MTLDevice> found = nil;
    char *end;
    if (!want || !*want) {
        found = MTLCreateSystemDefaultDevice(); /* +1 */
    } else {
        long i = strtol(want, &end, 10);
        if (*end == 0) {
            if (i >= 0 && (NSUInteger)i < [all count]) found = [[all objectAtIndex:(NSUInteger)i] retain];
        } else {
            for (NSUInteger k = 0; k < [all count] && !found; k++) {
                id<MTLDevice> d = [all objectAtIndex:k];
                if (strstr([[d name] UTF8String], want)) found = [d retain];
            }
        }
    }
    [all release];
    return found;
}

/* ---- pipelines ---- */

/* MSL as the build produced it, compiled without fast math (which would
 * change Infinity/NaN handling and rounding against the CPU reference) for
 * MSL 3.1 (macOS 14), the version spirv-cross was asked for. */
static MTLCompileOptions *compile_options(void) {
    MTLCompileOptions *o = [[MTLCompileOptions alloc] init];
    o.languageVersion = MTLLanguageVersion3_1;
    /* mathMode exists from the macOS 15 SDK on (the macos-14 runners build
     * with the 14 SDK, which lacks it); at run time, from macOS 15 on */
#if defined(__MAC_15_0) && __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_15_0
    if (@available(macOS 15.0, *)) {
        o.mathMode = MTLMathModeSafe;
        return o;
    }
#endif
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
    o.fastMathEnabled = NO;
#pragma clang diagnostic pop
    return o;
}

static int make_pipeline(kt_gpu *g, MTLCompileOptions *opts, int k) {
    const kt_gpu_kernel_info *info = &kt_gpu_kernels[k];
    NSError *err = nil;
    NSString *src = [NSString stringWithUTF8String:(const char *)MSL[k]];
    id<MTLLibrary> lib = [g->device newLibraryWithSource:src options:opts error:&err];
    if (!lib)
        return kt_fail("metal: the %s kernel does not compile on %s: %s", info->name, g->name,
                       err ? [[err localizedDescription] UTF8String] : "no reason given");
    char entry[64];
    snprintf(entry, sizeof entry, "kt_%s", info->name);
    id<MTLFunction> fn = [lib newFunctionWithName:[NSString stringWithUTF8String:entry]];
    [lib release];
    if (!fn) return kt_fail("metal: the %s kernel's MSL has no entry point %s", info->name, entry);
    g->pipelines[k] = [g->device newComputePipelineStateWithFunction:fn error:&err];
    [fn release];
    if (!g->pipelines[k])
        return kt_fail("metal: the %s kernel does not build on %s: %s", info->name, g->name,
                       err ? [[err localizedDescription] UTF8String] : "no reason given");
    if ([g->pipelines[k] maxTotalThreadsPerThreadgroup] < info->threads)
        return kt_fail("metal: the %s kernel needs %u threads per threadgroup, %s allows it %lu", info->name,
                       info->threads, g->name, (unsigned long)[g->pipelines[k] maxTotalThreadsPerThreadgroup]);
    g->simd_width = (uint32_t)[g->pipelines[k] threadExecutionWidth];
    return 0;
}

/* ---- the host ---- */

static void mtl_close(kt_gpu *g);

static int mtl_present(void) { return 1; } /* every Mac macOS 14 runs on has a Metal device */

static kt_gpu *mtl_open(const char *want) {
    @autoreleasepool {
        kt_gpu *g = kt_xcalloc(1, sizeof *g);
        unsigned n = 0;
        int rc = 0;
        g->device = choose_device(want, &n);
        if (!g->device) {
            rc = want && *want ? kt_fail("metal: no device matches KINTSUGI_METAL_DEVICE='%s' (%u devices)", want, n)
                               : kt_fail("metal: no Metal device on this machine");
        } else {
            snprintf(g->name, sizeof g->name, "%s", [[g->device name] UTF8String]);
            if (!family_is_supported(g->device))
                rc = kt_fail("metal: %s reports neither the Apple7 nor the Metal3 GPU family; the kernels are not "
                             "run on it (docs/GPU.md)", g->name);
        }
        if (rc == 0 && !(g->queue = [g->device newCommandQueue])) rc = kt_fail("metal: %s gives no command queue", g->name);
        if (rc == 0) {
            MTLCompileOptions *opts = compile_options();
            for (int k = 0; rc == 0 && k < KT_GPU_KERNELS; k++) rc = make_pipeline(g, opts, k);
            [opts release];
        }
        if (rc) {
            mtl_close(g);
            return NULL;
        }
        return g;
    }
}

static void end_commands(kt_gpu *g) {
    if (g->enc) {
        [g->enc endEncoding];
        [g->enc release];
        g->enc = nil;
    }
    [g->cb release];
    g->cb = nil;
}

static void mtl_close(kt_gpu *g) {
    if (!g) return;
    @autoreleasepool {
        end_commands(g); /* recorded, never submitted: dropped */
        for (int k = 0; k < KT_GPU_KERNELS; k++) [g->pipelines[k] release];
        [g->queue release];
        [g->device release];
    }
    free(g);
}

static const char *mtl_device_name(const kt_gpu *g) { return g->name; }
static uint32_t mtl_simd_width(const kt_gpu *g) { return g->simd_width; }

static int mtl_buffer_new(kt_gpu *g, size_t size, kt_gpu_buffer *out) {
    memset(out, 0, sizeof *out);
    if (size > [g->device maxBufferLength])
        return kt_fail("metal: a buffer of %zu bytes is more than %s allows (%lu)", size, g->name,
                       (unsigned long)[g->device maxBufferLength]);
    /* shared storage: one copy the CPU and the GPU both see (Apple silicon's
     * unified memory), written by the backend through map */
    id<MTLBuffer> b = [g->device newBufferWithLength:(size ? size : 4) options:MTLResourceStorageModeShared];
    if (!b) return kt_fail("metal: no buffer of %zu bytes on %s", size, g->name);
    out->map = [b contents];
    out->size = size;
    out->handle = b; /* the +1 reference buffer_free releases */
    return 0;
}

static size_t mtl_max_binding(const kt_gpu *g) { return (size_t)[g->device maxBufferLength]; }
static size_t mtl_import_alignment(const kt_gpu *g) {
    (void)g;
    return (size_t)getpagesize(); /* 16 KiB on Apple silicon */
}

/* The mapped model's pages wrapped as a buffer without a copy: Metal wants
 * a page-aligned start and a whole number of pages; nothing is freed with
 * the buffer (the mapping belongs to the model). */
static int mtl_buffer_import(kt_gpu *g, const void *p, size_t size, kt_gpu_buffer *out) {
    memset(out, 0, sizeof *out);
    const size_t page = (size_t)getpagesize();
    if ((uintptr_t)p % page || size % page || !size || size > [g->device maxBufferLength])
        return kt_fail("metal: %s cannot wrap %zu bytes at that address", g->name, size);
    id<MTLBuffer> b = [g->device newBufferWithBytesNoCopy:(void *)p length:size options:MTLResourceStorageModeShared
                                             deallocator:nil];
    if (!b) return kt_fail("metal: %s cannot wrap %zu bytes of the model's memory", g->name, size);
    out->map = (void *)p;
    out->size = size;
    out->handle = b;
    return 0;
}

static void mtl_buffer_free(kt_gpu *g, kt_gpu_buffer *b) {
    (void)g;
    if (!b->handle) return;
    [(id<MTLBuffer>)b->handle release];
    memset(b, 0, sizeof *b);
}

/* A serial encoder runs dispatches in the order they were encoded, each
 * seeing what the ones before it wrote (Metal tracks the hazards of these
 * buffers): the order of the barriers vulkan.c places between steps. */
static int begin(kt_gpu *g) {
    if (g->cb) return 0;
    g->cb = [[g->queue commandBuffer] retain];
    if (g->cb) g->enc = [[g->cb computeCommandEncoderWithDispatchType:MTLDispatchTypeSerial] retain];
    if (!g->cb || !g->enc) {
        end_commands(g);
        return kt_fail("metal: %s gives no command buffer", g->name);
    }
    return 0;
}

static int mtl_record(kt_gpu *g, kt_gpu_kernel kernel, const kt_gpu_buffer *const *buffers, int n_buffers,
                      const void *args, size_t args_size, uint32_t groups_x, uint32_t groups_y) {
    if (kernel < 0 || kernel >= KT_GPU_KERNELS || n_buffers != kt_gpu_kernels[kernel].n_buffers ||
        n_buffers > MAX_BUFFERS || args_size > MAX_ARGS)
        return kt_fail("metal: kernel %d called with %d buffers and %zu bytes of arguments", (int)kernel, n_buffers,
                       args_size);
    @autoreleasepool {
        if (begin(g)) return -1;
        uint8_t block[MAX_ARGS] = {0};
        memcpy(block, args, args_size);
        [g->enc setComputePipelineState:g->pipelines[kernel]];
        [g->enc setBytes:block length:MAX_ARGS atIndex:KT_GPU_ARGS_INDEX];
        for (int i = 0; i < n_buffers; i++)
            [g->enc setBuffer:(id<MTLBuffer>)buffers[i]->handle offset:0 atIndex:(NSUInteger)i + 1];
        /* the workgroup size is fixed in the kernel's source (gpu_abi.h); MSL
         * leaves it to the dispatch */
        [g->enc dispatchThreadgroups:MTLSizeMake(groups_x, groups_y ? groups_y : 1, 1)
               threadsPerThreadgroup:MTLSizeMake(kt_gpu_kernels[kernel].threads, 1, 1)];
    }
    return 0;
}

static int mtl_submit(kt_gpu *g) {
    if (!g->cb) return 0;
    int rc = 0;
    @autoreleasepool {
        [g->enc endEncoding];
        [g->enc release];
        g->enc = nil;
        [g->cb commit];
        [g->cb waitUntilCompleted];
        if ([g->cb status] != MTLCommandBufferStatusCompleted) {
            NSError *err = [g->cb error];
            rc = kt_fail("metal: a submission failed on %s: %s", g->name,
                         err ? [[err localizedDescription] UTF8String] : "no reason given");
        }
        end_commands(g);
    }
    return rc;
}

static const kt_gpu_host host = {
    .api = "metal", .device_env = "KINTSUGI_METAL_DEVICE", .present = mtl_present, .open = mtl_open,
    .close = mtl_close, .device_name = mtl_device_name, .simd_width = mtl_simd_width, .buffer_new = mtl_buffer_new,
    .buffer_free = mtl_buffer_free, .max_binding = mtl_max_binding, .import_alignment = mtl_import_alignment,
    .buffer_import = mtl_buffer_import, .record = mtl_record, .submit = mtl_submit};

const kt_gpu_host *kt_gpu_metal(void) { return &host; }
