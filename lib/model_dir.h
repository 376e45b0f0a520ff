/* model_dir.h - a model directory: its safetensors files seen as one set of
 * tensors.
 *
 * Two layouts exist: a single "model.safetensors", or shards listed by
 * "model.safetensors.index.json" ({"metadata": {...}, "weight_map": {tensor:
 * file}}). With an index, every listed shard must exist and be valid, every
 * tensor must be in exactly one shard, and the map must say which. Shard
 * files that match model*.safetensors but are not listed are reported in
 * `unlisted` (mlx-lm loads every file it globs, so they matter). Symlinks
 * are followed, so a Hugging Face cache snapshot works as it is.
 */
#ifndef KT_MODEL_DIR_H
#define KT_MODEL_DIR_H

#include "safetensors.h"

typedef struct {
    size_t shard;   /* index into shards[] */
    size_t tensor;  /* index into shards[shard].tensors[] */
} kt_tensor_ref;

typedef struct {
    char *dir;
    char **shard_names;     /* file names relative to dir */
    st_file *shards;
    size_t n_shards;
    cJSON *index;           /* the parsed index, or NULL for a single file */
    kt_tensor_ref *refs;    /* every tensor, shard by shard, header order */
    size_t n_tensors;
    strmap by_name;         /* name -> index into refs */
    char **unlisted;        /* model*.safetensors files the index does not name */
    size_t n_unlisted;
} kt_model_files;

int kt_model_open(kt_model_files *m, const char *dir);
/* One .safetensors file seen as a model of one shard (no index). */
int kt_model_open_file(kt_model_files *m, const char *path);
/* Assemble a model from shards opened elsewhere (st_open_header, for an
 * archive read as a stream); takes ownership of SHARDS, NAMES (and their
 * strings) and INDEX (may be NULL: then NAMES must be one shard). The same
 * checks as kt_model_open: each tensor once, the index matching. */
int kt_model_from_shards(kt_model_files *m, const char *label, st_file *shards, char **names, size_t n,
                         cJSON *index);
/* Fill m->unlisted: model*.safetensors files in m->dir that are not shards. */
void kt_model_find_unlisted(kt_model_files *m);
void kt_model_close(kt_model_files *m);
const st_tensor *kt_model_tensor(const kt_model_files *m, size_t i);
const st_tensor *kt_model_find(const kt_model_files *m, const char *name);
/* kt_check_dir, and then DIR/config.json must exist: else -1 with the one
 * wording "DIR/config.json: no such file; not a model directory", a failed
 * check (format, exit 1) in every tool. */
int kt_check_model_dir(const char *dir);
/* "DIR/NAME" in a new string. */
char *kt_path_join(const char *dir, const char *name);
int kt_is_dir(const char *path);
int kt_is_file(const char *path);

#endif
