/* hub.h - a Hugging Face hub name ("ORG/NAME") resolved to its snapshot in
 * the local cache, the way huggingface_hub resolves it (no download: there
 * is no network here, and a tool that fetched would be another tool).
 *
 * The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. A model
 * lives in models--ORG--NAME/; refs/REVISION holds the commit hash, and
 * snapshots/HASH/ is the directory (its files are links into blobs/). A
 * revision that is itself a 40-digit commit hash names the snapshot directly.
 */
#ifndef KT_HUB_H
#define KT_HUB_H

/* 1 when ARG is not an existing path and has the form ORG/NAME. */
int kt_hub_is_name(const char *arg);

/* The snapshot directory of NAME at REVISION (NULL: "main"), malloc'd; NULL
 * with kt_errmsg saying where it looked. */
char *kt_hub_resolve(const char *name, const char *revision);

/* ARG itself when it is a path (or not a hub name), else its snapshot.
 * *OWNED receives what the caller must free (NULL for ARG). NULL on failure. */
const char *kt_resolve_model_arg(const char *arg, const char *revision, char **owned);

#endif
