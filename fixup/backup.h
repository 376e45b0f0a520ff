/* backup.h - change a file without ever losing its first version.
 *
 * Before a file is replaced for the first time, its original is kept as
 * NAME.orig (a hard link where possible, so even a multi-GB shard costs no
 * space); a later run never overwrites an existing NAME.orig. The new content
 * goes through a temporary file, fsync and rename, so NAME is always either
 * the old or the new version. */
#ifndef KT_FIXUP_BACKUP_H
#define KT_FIXUP_BACKUP_H

#include <stddef.h>

/* Keep PATH as PATH.orig unless that exists. */
int fx_keep_original(const char *path);
/* fx_keep_original, then write DATA atomically to PATH. */
int fx_replace_file(const char *path, const void *data, size_t len);

#endif
