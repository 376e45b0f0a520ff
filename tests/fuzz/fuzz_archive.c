/* fuzz_archive.c - a model inside an archive (tar, gzip, zstd, xz, zip: all
 * through libarchive): the input is written to a file and opened as
 * kintsugi-convert opens a source; every tensor it lists is then fetched in
 * stored order and released, as the converter does. */
#include "archive_source.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[96];

static void remove_input(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/kintsugi-fuzz-%d.tar", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
        atexit(remove_input);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    cv_archive *a = NULL;
    kt_model_files m;
    memset(&m, 0, sizeof m);
    if (cv_archive_open(&a, path, &m) == 0) {
        char *text;
        size_t len;
        if (cv_archive_read_file(a, "config.json", &text, &len) > 0) free(text);
        for (size_t i = 0; i < m.n_tensors; i++) {
            const st_tensor *t = kt_model_tensor(&m, i);
            if (cv_archive_fetch(a, t) == 0) cv_archive_release(a, t);
        }
    }
    cv_archive_close(a); /* as convert's source does, whether the open succeeded or not */
    kt_model_close(&m);
    return 0;
}
