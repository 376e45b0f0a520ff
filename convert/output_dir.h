/* output_dir.h - build a directory beside its destination and move it into
 * place only when complete.
 *
 * Everything is written into "DST.kintsugi-tmp-PID"; the rename at the end is
 * atomic, so at no moment does DST hold a partial model: an interrupted run
 * leaves either the old DST (or nothing) plus a temporary directory whose
 * name says what it is. With --force an existing DST is moved aside first and
 * removed only after the new one is in place.
 */
#ifndef KT_CONVERT_OUTPUT_DIR_H
#define KT_CONVERT_OUTPUT_DIR_H

typedef struct {
    char *dst, *tmp;
} cv_outdir;

/* Before anything is read: clean the leftovers of killed runs for DST, then
 * refuse what lib/output_path.h refuses (DST among or around the INPUTS, an
 * existing DST without FORCE, and with FORCE anything but a model
 * directory). O is set up either way (cv_outdir_abort frees it). */
int cv_outdir_check(cv_outdir *o, const char *dst, const char *const *inputs, int n_inputs, int force);
/* Create DST's missing parents and the temporary directory. */
int cv_outdir_begin(cv_outdir *o);
/* fsync and rename into place. */
int cv_outdir_commit(cv_outdir *o);
/* Remove the temporary directory and everything in it. */
void cv_outdir_abort(cv_outdir *o);
/* Path of NAME inside the temporary directory (caller frees). */
char *cv_outdir_path(const cv_outdir *o, const char *name);

#endif
