/* choices.h - multiple-choice accuracy the way lm-evaluation-harness
 * measures it.
 *
 * Each item is a context and a few choices, one of them right. A choice's
 * score is its log-likelihood as the continuation of the context: the sum of
 * the log-probabilities of the continuation's tokens, where (as lm-eval's
 * _encode_pair splits it) the context and context + continuation are each
 * encoded without special tokens and the continuation's tokens are those of
 * the whole past the length of the context's encoding; whitespace at the end
 * of the context moves to the front of the continuation first. The model reads
 * the context's tokens followed by the continuation's. acc counts the items
 * whose best-scored choice is the right one; acc_norm divides each score by
 * the choice's length in characters first (lm-eval's len(choice)).
 *
 * Two forms of JSON Lines are read:
 *   {"context": str, "choices": [str, ...], "answer": int}
 *       scored text = context + choice, nothing added between;
 *   JCommonsenseQA's own fields {"question", "choice0".."choice4", "label"}
 *       with lm-eval's ja_leaderboard_jcommonsenseqa prompt: a fixed
 *       instruction, then "### 指示：\n出力は以下から選択してください：\n",
 *       "- CHOICE\n" per choice, "\n### 入力：\nQUESTION\n\n### 応答：",
 *       the continuation "\n" + choice.
 * With K few-shot examples the first K items of the file are the examples
 * (their context and right answer, each followed by a blank line, before
 * every scored item's context) and are not scored; lm-eval draws its
 * examples from the training split instead. */
#ifndef KT_CHOICES_H
#define KT_CHOICES_H

#include "json.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    long line;          /* in the file, from 1 */
    char *context;      /* this item's own context (the few-shot prefix not included) */
    char **choice;      /* as given: what acc_norm measures */
    char **cont;        /* the scored continuations (JCommonsenseQA: "\n" + choice) */
    int n_choices, answer;
} kt_mc_item;

typedef struct kt_mc_set {
    const char *path;
    int jcqa;           /* JCommonsenseQA's fields (else the generic form) */
    kt_mc_item *items;
    int n;
} kt_mc_set;

typedef struct {
    int scored, num_fewshot;
    double acc, acc_stderr, acc_norm, acc_norm_stderr;
    /* per scored item */
    double *ll;         /* n_choices each, item after item */
    int *pick, *pick_norm;
} kt_mc_result;

/* Read PATH. Every problem is one error "PATH:LINE: ...". 0 or -1. */
int kt_mc_read(const char *path, kt_mc_set *set);
/* The same on LEN bytes of TEXT, PATH naming them in messages (kept, not
 * copied: it must outlive SET). */
int kt_mc_parse(const char *text, size_t len, const char *path, kt_mc_set *set);
void kt_mc_free(kt_mc_set *set);

/* Score every item past the first NUM_FEWSHOT. An item whose context and
 * continuation need more than MAX_CONTEXT positions is an error naming its
 * line. PROGRESS: a label for a bar on a terminal (items done, items per
 * second, time left), or NULL. 0 or -1 (kt_errmsg). */
int kt_mc_eval(const kt_model *m, const kt_tokenizer *tok, const kt_mc_set *set, int num_fewshot, int max_context,
               const char *progress, kt_mc_result *r);
void kt_mc_result_free(kt_mc_result *r);

/* {"format", "items", "num_fewshot", "acc", "acc_stderr", "acc_norm",
 *  "acc_norm_stderr", "results": [{"line", "answer", "choice", "choice_norm",
 *  "loglikelihoods"}]} */
cJSON *kt_mc_to_json(const kt_mc_set *set, const kt_mc_result *r);

#endif
