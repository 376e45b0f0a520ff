/* output_dir.h - build a directory beside its destination and move it into
 * place only when complete, keeping whatever in the destination the tool did
 * not make.
 *
 * Everything is written into "DST.kintsugi-tmp-PID"; the rename at the end is
 * atomic, so at no moment does DST hold a partial model: an interrupted run
 * leaves either the old DST (or nothing) plus a temporary directory whose
 * name says what it is.
 *
 * With --force an existing DST is replaced, but only what the tool makes:
 *   - an entry of DST that the new output also holds is replaced;
 *   - an entry that the tool's STALE rule names (a shard of an earlier run
 *     with more shards, its index) is removed;
 *   - everything else (a .git clone, .gitattributes, the user's notes) is
 *     moved, untouched, into the new directory before the swap.
 * The swap is: the kept entries renamed into the temporary directory (their
 * names first written to a journal there), DST renamed to
 * "DST.kintsugi-old-PID", the temporary directory renamed to DST, the old
 * one removed. A run killed at any step is undone by the next run for the
 * same DST (kt_outdir_check): the old DST is put back and the journal's
 * entries returned to it, so a user's file is never lost, only ever moved.
 */
#ifndef KT_OUTPUT_DIR_H
#define KT_OUTPUT_DIR_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **names;
    size_t n;
} kt_names;

typedef struct {
    char *dst, *tmp;
    const char *prog;     /* for warnings */
    int (*stale)(const char *name); /* a file of a kind the tool writes, absent from this run's output */
    /* after kt_outdir_commit over an existing DST: what happened to its entries */
    kt_names replaced, removed, kept;
} kt_outdir;

/* Before anything is read: undo the leftovers of killed runs for DST, then
 * refuse what lib/output_path.h refuses (DST among or around the INPUTS, an
 * existing DST without FORCE, and with FORCE anything but a model
 * directory). A DST that is a symlink to a directory is written where it
 * points. O is set up either way (kt_outdir_abort frees it). */
int kt_outdir_check(kt_outdir *o, const char *prog, const char *dst, const char *const *inputs, int n_inputs,
                    int force);
/* Create DST's missing parents and the temporary directory. */
int kt_outdir_begin(kt_outdir *o);
/* Path of NAME inside the temporary directory (caller frees). */
char *kt_outdir_path(const kt_outdir *o, const char *name);
/* Path of NAME inside the existing DST, NULL when DST or NAME does not exist
 * (caller frees): what a tool reads to decide whether a file there is its own. */
char *kt_outdir_existing(const kt_outdir *o, const char *name);
/* fsync, keep the user's entries, rename into place. */
int kt_outdir_commit(kt_outdir *o);
/* Remove the temporary directory and everything the tool wrote in it. */
void kt_outdir_abort(kt_outdir *o);

/* The shards and index of an MLX or Hugging Face model directory:
 * "model.safetensors", "model-*.safetensors" and their index, the files
 * mlx-lm's loader globs. A stale one of these would be loaded with the new
 * model, so --force removes them. */
int kt_outdir_stale_model_file(const char *name);

/* After a commit over an existing DST, one line on F: what was replaced,
 * removed and kept, then NOTE (may be NULL). Nothing when DST was new. */
void kt_outdir_summary(const kt_outdir *o, const char *note, FILE *f);

#endif
