/* write_queue.c - see write_queue.h. */
#include "write_queue.h"
#include "error.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    st_writer *w;
    void *buf;
    size_t len;
    int owned;
} job;

struct cv_queue {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t changed;
    job *jobs;
    int capacity, head, count, busy, stop;
    char *error; /* the first failure, copied out of the writer thread */
};

static void *writer_main(void *arg) {
    cv_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->stop) pthread_cond_wait(&q->changed, &q->mu);
        if (q->count == 0 && q->stop) break;
        job j = q->jobs[q->head];
        q->busy = 1;
        pthread_mutex_unlock(&q->mu);
        int rc = q->error ? -1 : st_writer_write(j.w, j.buf, j.len);
        char *msg = rc && !q->error ? kt_xstrdup(kt_errmsg()) : NULL;
        if (j.owned) free(j.buf);
        pthread_mutex_lock(&q->mu);
        if (msg) q->error = msg;
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        q->busy = 0;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

cv_queue *cv_queue_start(int capacity) {
    cv_queue *q = kt_xcalloc(1, sizeof *q);
    q->capacity = capacity;
    q->jobs = kt_xcalloc((size_t)capacity, sizeof *q->jobs);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->changed, NULL);
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        free(q->jobs);
        free(q);
        return NULL;
    }
    return q;
}

static int failed(cv_queue *q) { return q->error ? kt_fail_io("%s", q->error) : 0; }

int cv_queue_push(cv_queue *q, st_writer *w, void *buf, size_t len, int owned) {
    pthread_mutex_lock(&q->mu);
    while (q->count == q->capacity) pthread_cond_wait(&q->changed, &q->mu);
    q->jobs[(q->head + q->count) % q->capacity] = (job){w, buf, len, owned};
    q->count++;
    pthread_cond_broadcast(&q->changed);
    int rc = failed(q);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cv_queue_flush(cv_queue *q) {
    pthread_mutex_lock(&q->mu);
    while (q->count > 0) pthread_cond_wait(&q->changed, &q->mu);
    int rc = failed(q);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int cv_queue_stop(cv_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    int rc = failed(q);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->changed);
    free(q->error);
    free(q->jobs);
    free(q);
    return rc;
}
