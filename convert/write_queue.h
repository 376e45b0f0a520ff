/* write_queue.h - a writer thread, so that writing one piece of output
 * overlaps quantizing the next.
 *
 * The converter pushes buffers in the order they must appear in their shard
 * files; one thread appends them in that order. The queue holds at most a few
 * buffers, which bounds the memory in flight: a push waits while it is full.
 */
#ifndef KT_CONVERT_WRITE_QUEUE_H
#define KT_CONVERT_WRITE_QUEUE_H

#include <stddef.h>

#include "safetensors.h"

typedef struct cv_queue cv_queue;

cv_queue *cv_queue_start(int capacity);
/* Append LEN bytes of BUF to W (in push order). OWNED: free(BUF) once written;
 * otherwise BUF must stay valid until cv_queue_flush() returns. Returns -1
 * (with kt_errmsg) when an earlier write failed. */
int cv_queue_push(cv_queue *q, st_writer *w, void *buf, size_t len, int owned);
/* Wait until everything pushed is written. -1 when a write failed. */
int cv_queue_flush(cv_queue *q);
/* Flush, stop the thread, free the queue. -1 when a write failed. */
int cv_queue_stop(cv_queue *q);

#endif
