/* repair.h - the findings of kintsugi-fixup and the file operations that
 * carry them out.
 *
 * Rules only look and record: each finding has a rule id (which
 * kintsugi-verify also names), the file and a one-line reason. The changes
 * to files are collected separately, one per file, so that several rules
 * touching config.json give one diff and one write.
 */
#ifndef KT_FIXUP_REPAIR_H
#define KT_FIXUP_REPAIR_H

#include <stddef.h>

#include "json.h"
#include "model_dir.h"

typedef struct {
    const char *rule;   /* e.g. "config-time-step-limit" */
    char *file;
    char *reason;
    int fixable;        /* 0: reported only (e.g. needs --original) */
} fx_finding;

typedef enum { FX_WRITE, FX_SHARD_SHAPES, FX_MOVE_ASIDE } fx_op_kind;

typedef struct {
    fx_op_kind kind;
    char *file;                 /* relative to the directory */
    char *old_text, *new_text;  /* FX_WRITE */
    size_t old_len, new_len;
    char **tensors;             /* FX_SHARD_SHAPES: conv1d weights to relabel [C,1,K] -> [C,K,1] */
    size_t n_tensors;
    char **casts;               /* FX_SHARD_SHAPES too: tensors to cast to cast_to */
    size_t n_casts;
    int cast_to;                /* a kt_dtype */
} fx_op;

typedef struct {
    const char *dir, *original;  /* original: the Hugging Face source, or NULL */
    int fix_shards;
    fx_finding *findings;
    size_t n_findings;
    fx_op *ops;
    size_t n_ops;
    int warnings;
} fx_session;

void fx_find(fx_session *s, const char *rule, const char *file, int fixable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
fx_op *fx_add_op(fx_session *s, fx_op_kind kind, const char *file);
void fx_session_free(fx_session *s);

/* A finding's reason, written as done ("renamed to", "; rewritten"), in the
 * conditional for --check and --dry-run ("would be renamed to"). Malloc'd. */
char *fx_conditional(const char *reason);

/* The rules, by file. Each returns -1 only when it cannot read what it must. */
int fx_rules_config(fx_session *s, const kt_model_files *m);
int fx_rules_tokenizer(fx_session *s);
int fx_rules_tensors(fx_session *s, const kt_model_files *m);

/* Open the shards of DIR even when the index is wrong (that is one of the
 * repairs): the shards the index names that exist, else the error stands. */
int fx_open_lenient(kt_model_files *m, const char *dir);

/* Every rule id with what it checks, NULL-terminated (kintsugi-verify reports
 * each as a check). */
typedef struct {
    const char *id, *checks;
} fx_rule_info;
extern const fx_rule_info fx_rules[];

/* Carry out the operations (backups first). */
int fx_apply(fx_session *s);

#endif
