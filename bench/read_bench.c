/* read_bench.c - safetensors reader throughput against this machine's memory
 * read bandwidth, on the same bytes in the same run.
 *
 *   read-bench FILE.safetensors   (write one first with: read-bench --make FILE GiB)
 *
 * Reader: st_open (validate header, mmap) plus one pass that touches every
 * byte of every tensor (a 64-bit XOR, so the compiler cannot skip it).
 * Bandwidth: the same pass over an anonymous buffer already in memory.
 * Each figure is the median of 5 runs; the file is expected in the page cache.
 */
#include "bench_util.h"
#include "error.h"
#include "safetensors.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t xor_pass(const uint8_t *p, size_t n) {
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { memcpy(&w, p + i, 8); acc ^= w; }
    for (; i < n; i++) acc ^= p[i];
    return acc;
}

static int make_file(const char *path, int gib) {
    enum { T = 8 };
    uint64_t rows = (uint64_t)gib * (1ull << 30) / T / 8192, shape[2] = {rows, 4096};
    st_spec specs[T];
    char names[T][32];
    for (int i = 0; i < T; i++) {
        snprintf(names[i], sizeof names[i], "layer.%d.weight", i);
        specs[i] = (st_spec){names[i], KT_BF16, 2, shape};
    }
    st_writer *w = st_writer_create(path, specs, T, NULL);
    if (!w) return -1;
    size_t chunk = 1 << 24;
    uint8_t *buf = kt_xmalloc(chunk);
    for (size_t i = 0; i < chunk; i++) buf[i] = (uint8_t)(i * 131);
    uint64_t left = rows * 4096 * 2 * T;
    while (left) {
        size_t n = left < chunk ? (size_t)left : chunk;
        if (st_writer_write(w, buf, n)) { st_writer_abort(w); return -1; }
        left -= n;
    }
    free(buf);
    return st_writer_finish(w);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--make")) {
        if (make_file(argv[2], atoi(argv[3]))) { kt_print_error("read-bench"); return 1; }
        return 0;
    }
    if (argc != 2) { fprintf(stderr, "usage: read-bench FILE | --make FILE GIB\n"); return 2; }
    enum { RUNS = 5 };
    double reader[RUNS], memory[RUNS];
    uint64_t total = 0, sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now();
        st_file f;
        if (st_open(&f, argv[1])) { kt_print_error("read-bench"); return 1; }
        total = 0;
        for (size_t i = 0; i < f.n_tensors; i++) {
            sink ^= xor_pass(f.tensors[i].data, (size_t)f.tensors[i].nbytes);
            total += f.tensors[i].nbytes;
        }
        st_close(&f);
        reader[r] = bench_now() - t0;
    }
    size_t n = (size_t)(total < (1ull << 30) ? total : (1ull << 30));
    uint8_t *buf = kt_xmalloc(n);
    memset(buf, 1, n);
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now();
        sink ^= xor_pass(buf, n);
        memory[r] = (bench_now() - t0) * ((double)total / (double)n);
    }
    free(buf);
    qsort(reader, RUNS, sizeof(double), bench_cmp_double);
    qsort(memory, RUNS, sizeof(double), bench_cmp_double);
    double gb = (double)total / 1e9;
    printf("{\"bytes\": %llu, \"reader_s\": %.4f, \"reader_GBps\": %.2f, \"memory_GBps\": %.2f, "
           "\"ratio\": %.3f, \"sink\": %llu}\n",
           (unsigned long long)total, reader[RUNS / 2], gb / reader[RUNS / 2], gb / memory[RUNS / 2],
           memory[RUNS / 2] / reader[RUNS / 2], (unsigned long long)(sink & 1));
    return 0;
}
