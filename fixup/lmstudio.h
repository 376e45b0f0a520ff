/* lmstudio.h - patch LM Studio's bundled transformers for Nemotron-H
 * patterns with '-' (dense MLP layers), the "KeyError: '-'" of LM Studio's
 * MLX runtime 1.5-1.7. The model is fine; the host's copy of transformers
 * maps only M, E and * in hybrid_override_pattern. */
#ifndef KT_FIXUP_LMSTUDIO_H
#define KT_FIXUP_LMSTUDIO_H

/* ROOT: where to search (NULL: ~/.cache/lm-studio/extensions/backends).
 * Returns the exit code (0 patched or nothing to do, 1 --check found work or
 * the expected lines are missing), or -1 with kt_errmsg() on an error. */
int fx_lmstudio(const char *root, int dry_run, int check, int json);

/* The patched text of configuration_nemotron_h.py (NULL when nothing needs to
 * change; *missing set when the expected lines are not there). */
char *fx_patch_nemotron_config(const char *text, int *missing);
/* The patched text of configuration_utils.py (NULL when nothing to change). */
char *fx_patch_config_utils(const char *text);

#endif
