/* vulkan.c - the Vulkan host of the GPU kernels (gpu_host.h): device
 * choice, buffers, one compute pipeline per kernel from the SPIR-V embedded
 * at build time, dispatches recorded into one command buffer per submission.
 *
 * Plain Vulkan 1.1 compute: one instance, one device with a compute queue,
 * host-visible coherent memory (lavapipe and every integrated GPU have it;
 * a discrete GPU's resident buffers are the next layer's business), one
 * pipeline per kernel whose descriptor set layout has a storage buffer for
 * each binding the kernel declares (gpu_abi.h), push constants for the
 * arguments. Weights may be imported from the mapped model files without a
 * copy where the device has VK_EXT_external_memory_host (lavapipe does).
 */
#include "gpu_host.h"
#include "error.h"
#include "strbuf.h"

#include <dirent.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

/* the SPIR-V of each kernel, embedded at build time (build/gpu/kernels_spv.c) */
extern const uint32_t kt_spv_qmv[], kt_spv_mv_dense[], kt_spv_qrow[], kt_spv_rmsnorm[], kt_spv_mamba_conv[],
    kt_spv_mamba_ssm[], kt_spv_mamba_gate[], kt_spv_attend[], kt_spv_ewise[], kt_spv_qmm[], kt_spv_drow[],
    kt_spv_moe_route[], kt_spv_qmv_expert[], kt_spv_mv_dense_expert[], kt_spv_weigh[], kt_spv_mm_dense[];
extern const size_t kt_spv_qmv_size, kt_spv_mv_dense_size, kt_spv_qrow_size, kt_spv_rmsnorm_size,
    kt_spv_mamba_conv_size, kt_spv_mamba_ssm_size, kt_spv_mamba_gate_size, kt_spv_attend_size, kt_spv_ewise_size, kt_spv_qmm_size, kt_spv_drow_size,
    kt_spv_moe_route_size, kt_spv_qmv_expert_size, kt_spv_mv_dense_expert_size, kt_spv_weigh_size, kt_spv_mm_dense_size;

/* in kt_gpu_kernel's order */
static const struct {
    const uint32_t *code;
    const size_t *size;
} SPIRV[KT_GPU_KERNELS] = {
    {kt_spv_qmv, &kt_spv_qmv_size},           {kt_spv_mv_dense, &kt_spv_mv_dense_size},
    {kt_spv_qrow, &kt_spv_qrow_size},         {kt_spv_rmsnorm, &kt_spv_rmsnorm_size},
    {kt_spv_mamba_conv, &kt_spv_mamba_conv_size}, {kt_spv_mamba_ssm, &kt_spv_mamba_ssm_size},
    {kt_spv_mamba_gate, &kt_spv_mamba_gate_size}, {kt_spv_attend, &kt_spv_attend_size},
    {kt_spv_ewise, &kt_spv_ewise_size},       {kt_spv_qmm, &kt_spv_qmm_size},
    {kt_spv_drow, &kt_spv_drow_size},         {kt_spv_moe_route, &kt_spv_moe_route_size},
    {kt_spv_qmv_expert, &kt_spv_qmv_expert_size}, {kt_spv_mv_dense_expert, &kt_spv_mv_dense_expert_size},
    {kt_spv_weigh, &kt_spv_weigh_size},       {kt_spv_mm_dense, &kt_spv_mm_dense_size},
};

enum { MAX_BUFFERS = 8, MAX_ARGS = 128, MAX_SETS = 4096 };

struct kt_gpu {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool pool;
    VkDescriptorPool descriptors;
    VkDescriptorSetLayout layouts[KT_GPU_KERNELS];
    VkPipelineLayout pipeline_layouts[KT_GPU_KERNELS];
    VkPipeline pipelines[KT_GPU_KERNELS];
    VkFence fence;
    VkCommandBuffer cb;           /* the commands recorded since the last submit, or NULL */
    uint32_t sets;                /* descriptor sets taken from the pool by them */
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    uint32_t subgroup_size;
    size_t max_range;           /* maxStorageBufferRange */
    size_t import_alignment;    /* minImportedHostPointerAlignment, 0: no VK_EXT_external_memory_host */
    PFN_vkGetMemoryHostPointerPropertiesEXT host_pointer_properties;
};

typedef struct {
    VkBuffer buffer;
    VkDeviceMemory memory;
    int imported; /* the caller's memory: not mapped by us */
} buffer_state;

static int vk_fail(const char *what, VkResult r) { return kt_fail("vulkan: %s failed (VkResult %d)", what, (int)r); }

/* The device WANT names (vulkan.h), or -1. */
static int choose_device(VkPhysicalDevice *devs, uint32_t n, const char *want) {
    char *end;
    if (want && *want) {
        long i = strtol(want, &end, 10);
        if (*end == 0) return i >= 0 && (uint32_t)i < n ? (int)i : -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        if (want && *want ? strstr(p.deviceName, want) != NULL : p.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU)
            return (int)i;
    }
    return -1;
}

static int open_device(kt_gpu *vk, const char *want) {
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "kintsugi",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = vkCreateInstance(&ici, NULL, &vk->instance);
    if (r != VK_SUCCESS) return vk_fail("vkCreateInstance (is a Vulkan driver installed?)", r);
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(vk->instance, &n, NULL);
    VkPhysicalDevice devs[16];
    if (n > 16) n = 16;
    vkEnumeratePhysicalDevices(vk->instance, &n, devs);
    int i = choose_device(devs, n, want);
    if (i < 0)
        return want && *want ? kt_fail("vulkan: no device matches KINTSUGI_VULKAN_DEVICE='%s' (%u devices)", want, n)
                             : kt_fail("vulkan: no GPU among %u devices (a CPU implementation such as lavapipe is "
                                       "used only when named: KINTSUGI_VULKAN_DEVICE=llvmpipe)", n);
    vk->phys = devs[i];
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub};
    vkGetPhysicalDeviceProperties2(vk->phys, &props);
    memcpy(vk->name, props.properties.deviceName, sizeof vk->name);
    vk->subgroup_size = sub.subgroupSize;
    vk->max_range = props.properties.limits.maxStorageBufferRange;

    /* importing host memory, when the device can */
    uint32_t n_ext = 0;
    vkEnumerateDeviceExtensionProperties(vk->phys, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = kt_xcalloc(n_ext ? n_ext : 1, sizeof *ext);
    vkEnumerateDeviceExtensionProperties(vk->phys, NULL, &n_ext, ext);
    int can_import = 0;
    for (uint32_t e = 0; e < n_ext; e++) can_import |= !strcmp(ext[e].extensionName, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    free(ext);
    const char *enabled[] = {VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME};
    if (can_import) {
        VkPhysicalDeviceExternalMemoryHostPropertiesEXT hp = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
        VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &hp};
        vkGetPhysicalDeviceProperties2(vk->phys, &p2);
        vk->import_alignment = (size_t)hp.minImportedHostPointerAlignment;
    }

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, qf);
    vk->queue_family = UINT32_MAX;
    for (uint32_t q = 0; q < nq && vk->queue_family == UINT32_MAX; q++)
        if (qf[q].queueFlags & VK_QUEUE_COMPUTE_BIT) vk->queue_family = q;
    if (vk->queue_family == UINT32_MAX) return kt_fail("vulkan: %s has no compute queue", vk->name);
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family, .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci, .enabledExtensionCount = can_import ? 1u : 0u,
                              .ppEnabledExtensionNames = enabled};
    if ((r = vkCreateDevice(vk->phys, &dci, NULL, &vk->device)) != VK_SUCCESS) return vk_fail("vkCreateDevice", r);
    vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);
    if (can_import)
        vk->host_pointer_properties = (PFN_vkGetMemoryHostPointerPropertiesEXT)vkGetDeviceProcAddr(
            vk->device, "vkGetMemoryHostPointerPropertiesEXT");
    if (!vk->host_pointer_properties || !vk->import_alignment) vk->import_alignment = 0;
    return 0;
}

static int make_pipeline(kt_gpu *vk, int k) {
    VkDescriptorSetLayoutBinding b[MAX_BUFFERS];
    for (int i = 0; i < kt_gpu_kernels[k].n_buffers; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i + 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = (uint32_t)kt_gpu_kernels[k].n_buffers, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(vk->device, &lci, NULL, &vk->layouts[k]);
    if (r != VK_SUCCESS) return vk_fail("vkCreateDescriptorSetLayout", r);
    VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = MAX_ARGS};
    VkPipelineLayoutCreateInfo plci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                       .pSetLayouts = &vk->layouts[k], .pushConstantRangeCount = 1,
                                       .pPushConstantRanges = &pc};
    if ((r = vkCreatePipelineLayout(vk->device, &plci, NULL, &vk->pipeline_layouts[k])) != VK_SUCCESS)
        return vk_fail("vkCreatePipelineLayout", r);
    VkShaderModuleCreateInfo smci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = *SPIRV[k].size, .pCode = SPIRV[k].code};
    VkShaderModule module;
    if ((r = vkCreateShaderModule(vk->device, &smci, NULL, &module)) != VK_SUCCESS)
        return vk_fail("vkCreateShaderModule", r);
    VkComputePipelineCreateInfo cpci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module, .pName = "main"},
        .layout = vk->pipeline_layouts[k]};
    r = vkCreateComputePipelines(vk->device, VK_NULL_HANDLE, 1, &cpci, NULL, &vk->pipelines[k]);
    vkDestroyShaderModule(vk->device, module, NULL);
    if (r != VK_SUCCESS) return kt_fail("vulkan: the %s kernel does not build on %s (VkResult %d)", kt_gpu_kernels[k].name, vk->name, (int)r);
    return 0;
}

static void vk_close(kt_gpu *vk);

static kt_gpu *vk_open(const char *want) {
    kt_gpu *vk = kt_xcalloc(1, sizeof *vk);
    int rc = open_device(vk, want);
    VkResult r;
    if (rc == 0) {
        VkCommandPoolCreateInfo cpci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                        .queueFamilyIndex = vk->queue_family};
        if ((r = vkCreateCommandPool(vk->device, &cpci, NULL, &vk->pool)) != VK_SUCCESS) rc = vk_fail("vkCreateCommandPool", r);
    }
    if (rc == 0) {
        VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, MAX_SETS * MAX_BUFFERS};
        VkDescriptorPoolCreateInfo dpci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = MAX_SETS,
                                           .poolSizeCount = 1, .pPoolSizes = &size};
        if ((r = vkCreateDescriptorPool(vk->device, &dpci, NULL, &vk->descriptors)) != VK_SUCCESS)
            rc = vk_fail("vkCreateDescriptorPool", r);
    }
    if (rc == 0) {
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if ((r = vkCreateFence(vk->device, &fci, NULL, &vk->fence)) != VK_SUCCESS) rc = vk_fail("vkCreateFence", r);
    }
    for (int k = 0; rc == 0 && k < KT_GPU_KERNELS; k++) rc = make_pipeline(vk, k);
    if (rc) {
        vk_close(vk);
        return NULL;
    }
    return vk;
}

static void vk_close(kt_gpu *vk) {
    if (!vk) return;
    if (vk->device) {
        vkDeviceWaitIdle(vk->device);
        for (int k = 0; k < KT_GPU_KERNELS; k++) {
            if (vk->pipelines[k]) vkDestroyPipeline(vk->device, vk->pipelines[k], NULL);
            if (vk->pipeline_layouts[k]) vkDestroyPipelineLayout(vk->device, vk->pipeline_layouts[k], NULL);
            if (vk->layouts[k]) vkDestroyDescriptorSetLayout(vk->device, vk->layouts[k], NULL);
        }
        if (vk->fence) vkDestroyFence(vk->device, vk->fence, NULL);
        if (vk->descriptors) vkDestroyDescriptorPool(vk->device, vk->descriptors, NULL);
        if (vk->pool) vkDestroyCommandPool(vk->device, vk->pool, NULL);
        vkDestroyDevice(vk->device, NULL);
    }
    if (vk->instance) vkDestroyInstance(vk->instance, NULL);
    free(vk);
}

static int vk_gpu_driver_present(void) {
    if (getenv("VK_ICD_FILENAMES") || getenv("VK_DRIVER_FILES")) return 1;
#ifdef __linux__
    /* Mesa installs the manifests of its GPU drivers with lavapipe's whether or
     * not the hardware is there: look for the device nodes instead */
    DIR *d = opendir("/dev/dri");
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) found = !strncmp(e->d_name, "renderD", 7);
    if (d) closedir(d);
    return found || access("/dev/nvidia0", F_OK) == 0;
#else
    return 1;
#endif
}

static const char *vk_device_name(const kt_gpu *vk) { return vk->name; }
static uint32_t vk_subgroup_size(const kt_gpu *vk) { return vk->subgroup_size; }

static int vk_buffer_new(kt_gpu *vk, size_t size, kt_gpu_buffer *out) {
    memset(out, 0, sizeof *out);
    buffer_state *st = kt_xcalloc(1, sizeof *st);
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size ? size : 4,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(vk->device, &bci, NULL, &st->buffer);
    if (r != VK_SUCCESS) {
        free(st);
        return vk_fail("vkCreateBuffer", r);
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->device, st->buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &mp);
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < mp.memoryTypeCount && type == UINT32_MAX; i++)
        if ((req.memoryTypeBits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want) type = i;
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = type};
    if (type == UINT32_MAX) r = VK_ERROR_FEATURE_NOT_PRESENT;
    else r = vkAllocateMemory(vk->device, &mai, NULL, &st->memory);
    if (r == VK_SUCCESS) r = vkBindBufferMemory(vk->device, st->buffer, st->memory, 0);
    if (r == VK_SUCCESS) r = vkMapMemory(vk->device, st->memory, 0, VK_WHOLE_SIZE, 0, &out->map);
    if (r != VK_SUCCESS) {
        if (st->memory) vkFreeMemory(vk->device, st->memory, NULL);
        vkDestroyBuffer(vk->device, st->buffer, NULL);
        free(st);
        return kt_fail("vulkan: no host-visible buffer of %zu bytes on %s (VkResult %d)", size, vk->name, (int)r);
    }
    out->size = size;
    out->handle = st;
    return 0;
}

static size_t vk_max_binding(const kt_gpu *vk) { return vk->max_range; }
static size_t vk_import_alignment(const kt_gpu *vk) { return vk->import_alignment; }

/* The caller's memory bound to a buffer: the memory types the driver
 * allows for this pointer, the buffer marked for host allocations. */
static int vk_buffer_import(kt_gpu *vk, const void *p, size_t size, kt_gpu_buffer *out) {
    memset(out, 0, sizeof *out);
    const size_t A = vk->import_alignment;
    if (!A || (uintptr_t)p % A || size % A || !size)
        return kt_fail("vulkan: %s cannot import %zu bytes at that address (alignment %zu)", vk->name, size, A);
    const VkExternalMemoryHandleTypeFlagBits type = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    VkMemoryHostPointerPropertiesEXT hp = {.sType = VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    VkResult r = vk->host_pointer_properties(vk->device, type, p, &hp);
    if (r != VK_SUCCESS) return vk_fail("vkGetMemoryHostPointerPropertiesEXT", r);
    buffer_state *st = kt_xcalloc(1, sizeof *st);
    VkExternalMemoryBufferCreateInfo ext = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                            .handleTypes = (VkExternalMemoryHandleTypeFlags)type};
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .pNext = &ext, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    if ((r = vkCreateBuffer(vk->device, &bci, NULL, &st->buffer)) != VK_SUCCESS) {
        free(st);
        return vk_fail("vkCreateBuffer", r);
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->device, st->buffer, &req);
    const uint32_t bits = req.memoryTypeBits & hp.memoryTypeBits;
    uint32_t t = 0;
    while (t < 32 && !(bits & (1u << t))) t++;
    VkImportMemoryHostPointerInfoEXT imp = {.sType = VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT,
                                            .handleType = type, .pHostPointer = (void *)p};
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &imp,
                                .allocationSize = size, .memoryTypeIndex = t};
    r = t == 32 || req.size > size ? VK_ERROR_FEATURE_NOT_PRESENT : vkAllocateMemory(vk->device, &mai, NULL, &st->memory);
    if (r == VK_SUCCESS) r = vkBindBufferMemory(vk->device, st->buffer, st->memory, 0);
    if (r != VK_SUCCESS) {
        if (st->memory) vkFreeMemory(vk->device, st->memory, NULL);
        vkDestroyBuffer(vk->device, st->buffer, NULL);
        free(st);
        return kt_fail("vulkan: %s cannot import %zu bytes of host memory (VkResult %d)", vk->name, size, (int)r);
    }
    st->imported = 1;
    out->map = (void *)p;
    out->size = size;
    out->handle = st;
    return 0;
}

static void vk_buffer_free(kt_gpu *vk, kt_gpu_buffer *b) {
    buffer_state *st = b->handle;
    if (!st) return;
    vkDeviceWaitIdle(vk->device);
    if (!st->imported) vkUnmapMemory(vk->device, st->memory);
    vkFreeMemory(vk->device, st->memory, NULL);
    vkDestroyBuffer(vk->device, st->buffer, NULL);
    free(st);
    memset(b, 0, sizeof *b);
}

static int begin(kt_gpu *vk) {
    if (vk->cb) return 0;
    VkCommandBufferAllocateInfo cbai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = vk->pool,
                                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkResult r = vkAllocateCommandBuffers(vk->device, &cbai, &vk->cb);
    if (r != VK_SUCCESS) {
        vk->cb = NULL;
        return vk_fail("vkAllocateCommandBuffers", r);
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    vkBeginCommandBuffer(vk->cb, &bi);
    return 0;
}

static int vk_submit(kt_gpu *vk) {
    if (!vk->cb) return 0;
    /* the host reads the results once the fence has signalled */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(vk->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    vkEndCommandBuffer(vk->cb);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &vk->cb};
    vkResetFences(vk->device, 1, &vk->fence);
    VkResult r = vkQueueSubmit(vk->queue, 1, &si, vk->fence);
    if (r == VK_SUCCESS) r = vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, UINT64_MAX);
    vkFreeCommandBuffers(vk->device, vk->pool, 1, &vk->cb);
    vk->cb = NULL;
    vkResetDescriptorPool(vk->device, vk->descriptors, 0);
    vk->sets = 0;
    return r == VK_SUCCESS ? 0 : vk_fail("vkQueueSubmit", r);
}

static int vk_record(kt_gpu *vk, kt_gpu_kernel kernel, const kt_gpu_buffer *const *buffers, int n_buffers, const void *args,
                 size_t args_size, uint32_t groups_x, uint32_t groups_y) {
    if (kernel < 0 || kernel >= KT_GPU_KERNELS || n_buffers != kt_gpu_kernels[kernel].n_buffers || args_size > MAX_ARGS)
        return kt_fail("vulkan: kernel %d called with %d buffers and %zu bytes of arguments", (int)kernel, n_buffers, args_size);
    if (vk->sets == MAX_SETS && vk_submit(vk)) return -1; /* a long token: run what is recorded, go on */
    if (begin(vk)) return -1;
    VkDescriptorSetAllocateInfo dsai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                        .descriptorPool = vk->descriptors, .descriptorSetCount = 1,
                                        .pSetLayouts = &vk->layouts[kernel]};
    VkDescriptorSet set;
    VkResult r = vkAllocateDescriptorSets(vk->device, &dsai, &set);
    if (r != VK_SUCCESS) return vk_fail("vkAllocateDescriptorSets", r);
    vk->sets++;
    VkDescriptorBufferInfo info[MAX_BUFFERS];
    VkWriteDescriptorSet writes[MAX_BUFFERS];
    for (int i = 0; i < n_buffers; i++) {
        info[i] = (VkDescriptorBufferInfo){((buffer_state *)buffers[i]->handle)->buffer, 0, VK_WHOLE_SIZE};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                           .dstBinding = (uint32_t)i + 1, .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info[i]};
    }
    vkUpdateDescriptorSets(vk->device, (uint32_t)n_buffers, writes, 0, NULL);
    uint8_t pc[MAX_ARGS] = {0};
    memcpy(pc, args, args_size);
    vkCmdBindPipeline(vk->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipelines[kernel]);
    vkCmdBindDescriptorSets(vk->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vk->pipeline_layouts[kernel], 0, 1, &set, 0, NULL);
    vkCmdPushConstants(vk->cb, vk->pipeline_layouts[kernel], VK_SHADER_STAGE_COMPUTE_BIT, 0, MAX_ARGS, pc);
    vkCmdDispatch(vk->cb, groups_x, groups_y ? groups_y : 1, 1);
    /* each step reads what the steps before it wrote */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(vk->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
    return 0;
}

static const kt_gpu_host host = {
    .api = "vulkan", .device_env = "KINTSUGI_VULKAN_DEVICE", .present = vk_gpu_driver_present, .open = vk_open,
    .close = vk_close, .device_name = vk_device_name, .simd_width = vk_subgroup_size, .buffer_new = vk_buffer_new,
    .buffer_free = vk_buffer_free, .max_binding = vk_max_binding, .import_alignment = vk_import_alignment,
    .buffer_import = vk_buffer_import, .record = vk_record, .submit = vk_submit};

const kt_gpu_host *kt_gpu_vulkan(void) { return &host; }
