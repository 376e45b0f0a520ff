/* fuzz_safetensors.c - the safetensors header and offsets: the input is a
 * whole file; st_open_header validates it as st_open would (every rule of
 * lib/safetensors_read.c) and every tensor it accepts is checked to lie
 * inside the file. */
#include "safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    if (st_open_header(&f, "fuzz", data, size, size) == 0) {
        for (size_t i = 0; i < f.n_tensors; i++) {
            const st_tensor *t = &f.tensors[i];
            uint64_t nelem, nbytes;
            if (st_sizes(t->dtype, t->ndim, t->shape, &nelem, &nbytes) || nbytes != t->nbytes) abort();
        }
        st_close(&f);
    }
    return 0;
}
