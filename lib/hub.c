/* hub.c - see hub.h. */
#include "hub.h"
#include "error.h"
#include "model_dir.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int kt_hub_is_name(const char *arg) {
    struct stat st;
    if (stat(arg, &st) == 0) return 0;
    const char *slash = strchr(arg, '/');
    if (!slash || slash == arg || !slash[1] || strchr(slash + 1, '/')) return 0;
    if (arg[0] == '.' || arg[0] == '~') return 0;
    for (const char *p = arg; *p; p++)
        if (!(*p == '/' || *p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

/* The cache directory huggingface_hub would use. */
static char *cache_dir(void) {
    strbuf sb = {0};
    const char *v;
    if ((v = getenv("HF_HUB_CACHE")) && *v) sb_puts(&sb, v);
    else if ((v = getenv("HF_HOME")) && *v) sb_printf(&sb, "%s/hub", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v) sb_printf(&sb, "%s/huggingface/hub", v);
    else sb_printf(&sb, "%s/.cache/huggingface/hub", getenv("HOME") ? getenv("HOME") : "");
    return sb_take(&sb);
}

static int is_commit_hash(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return 0;
    return n == 40;
}

char *kt_hub_resolve(const char *name, const char *revision) {
    const char *rev = revision ? revision : "main";
    char *cache = cache_dir();
    strbuf repo = {0}, path = {0};
    sb_printf(&repo, "%s/models--", cache);
    for (const char *p = name; *p; p++) {
        if (*p == '/') sb_puts(&repo, "--");
        else sb_putc(&repo, *p);
    }
    char *result = NULL;
    if (!kt_is_dir(sb_cstr(&repo))) {
        kt_fail_io("%s: not in the local Hugging Face cache (looked for %s); download it first, e.g. "
                   "huggingface-cli download %s", name, sb_cstr(&repo), name);
        goto done;
    }
    char hash[128] = {0};
    if (is_commit_hash(rev)) {
        snprintf(hash, sizeof hash, "%s", rev);
    } else {
        sb_printf(&path, "%s/refs/%s", sb_cstr(&repo), rev);
        FILE *f = fopen(sb_cstr(&path), "r");
        size_t n = f ? fread(hash, 1, sizeof hash - 1, f) : 0;
        if (f) fclose(f);
        while (n && (hash[n - 1] == '\n' || hash[n - 1] == '\r' || hash[n - 1] == ' ')) hash[--n] = 0;
        if (!is_commit_hash(hash)) {
            kt_fail_io("%s: revision %s is not in the local Hugging Face cache (no commit hash in %s)", name, rev,
                       sb_cstr(&path));
            goto done;
        }
    }
    path.len = 0;
    sb_printf(&path, "%s/snapshots/%s", sb_cstr(&repo), hash);
    if (!kt_is_dir(sb_cstr(&path))) {
        kt_fail_io("%s: revision %s (%s) has no snapshot in the local Hugging Face cache (looked for %s)", name, rev,
                   hash, sb_cstr(&path));
        goto done;
    }
    result = sb_take(&path);
done:
    sb_free(&path);
    sb_free(&repo);
    free(cache);
    return result;
}

const char *kt_resolve_model_arg(const char *arg, const char *revision, char **owned) {
    *owned = NULL;
    if (!kt_hub_is_name(arg)) return arg;
    *owned = kt_hub_resolve(arg, revision);
    return *owned;
}
