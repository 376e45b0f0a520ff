/* file.h - reading a whole file into memory. */
#ifndef KT_FILE_H
#define KT_FILE_H

#include <stddef.h>

/* PATH's bytes in *DATA (malloc'd, NUL-terminated) and *LEN. Returns 1 when
 * read, 0 when PATH does not exist, -1 (kt_errmsg set) on any other error. */
int kt_read_file(const char *path, char **data, size_t *len);

/* 0 when PATH is a directory that can be read; else -1 with kt_errmsg in the
 * wording every tool uses: "PATH: no such file or directory", "PATH: not a
 * directory", "PATH: permission denied", "PATH: a symlink loop". */
int kt_check_dir(const char *path);

/* kt_read_file, where PATH "-" is standard input (read to its end). */
int kt_read_input(const char *path, char **data, size_t *len);

/* JSON Lines, read line by line: the next line of TEXT[0..LEN) at or after
 * *POS that is not blank (only spaces, tabs, a CR), in *S and *N, its number
 * (from 1) in *LINE; *POS and *LINE move past it. 0 at the end. */
int kt_next_line(const char *text, size_t len, size_t *pos, long *line, const char **s, size_t *n);


#endif
