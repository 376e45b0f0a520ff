/* output_path.h - the rules every tool follows before it writes anything.
 *
 * No command may remove or overwrite what it reads, whatever the flags. So
 * before a tool creates its output it resolves the output's path and every
 * input's (symlinks and ".." followed, even for parts that do not exist yet)
 * and refuses:
 *   - an output that is an input, lies inside an input directory, or is an
 *     ancestor of an input (replacing it would delete the input with it);
 *   - with --force, replacing anything but what the tool itself makes: a
 *     model directory (config.json and a model*.safetensors file) for the
 *     directory writers, a .safetensors file for kintsugi-quantize.
 * Each refusal is one line naming both paths.
 */
#ifndef KT_OUTPUT_PATH_H
#define KT_OUTPUT_PATH_H

/* PATH made absolute with every symlink and "." / ".." resolved, also when
 * its last components do not exist yet (they are then taken as written).
 * NULL (kt_errmsg set) when an existing part cannot be resolved. */
char *kt_resolve_path(const char *path);

/* 1 when A and B, both resolved, are the same path or A lies inside B. */
int kt_path_within(const char *a, const char *b);

/* A directory a tool may replace with --force: it holds config.json and at
 * least one model*.safetensors file. */
int kt_is_model_dir(const char *path);

/* May a directory DST be written, given the N inputs INPUTS (files or
 * directories)? 0 yes; -1 (kt_errmsg set) no. An existing DST needs FORCE and
 * must be a model directory. */
int kt_output_dir_ok(const char *dst, const char *const *inputs, int n, int force);

/* May a file OUT be written? The same rules; an existing OUT needs FORCE and
 * must be a regular file whose name ends in SUFFIX (NULL: any regular file).
 * OUT may not lie inside an input directory at all (a report beside a model
 * would be one more file that a loader globs, or it would replace one). */
int kt_output_file_ok(const char *out, const char *const *inputs, int n, int force, const char *suffix);

/* mkdir -p of PATH's parent (as mlx_lm.convert creates its output path). */
int kt_make_parents(const char *path);

/* Remove a directory tree (regular files, symlinks and directories; symlinks
 * are removed, never followed). */
int kt_remove_tree(const char *path);

#endif
