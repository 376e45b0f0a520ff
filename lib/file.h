/* file.h - reading a whole file into memory. */
#ifndef KT_FILE_H
#define KT_FILE_H

#include <stddef.h>

/* PATH's bytes in *DATA (malloc'd, NUL-terminated) and *LEN. Returns 1 when
 * read, 0 when PATH does not exist, -1 (kt_errmsg set) on any other error. */
int kt_read_file(const char *path, char **data, size_t *len);

#endif
