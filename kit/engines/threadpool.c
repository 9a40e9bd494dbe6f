/*
 * threadpool.c - the classic answer to blocking storage I/O (the seed's §2.3):
 * the job thread hands each I/O to a pool of worker threads that do blocking
 * pread/pwrite, and collects completions from a second queue. Every I/O costs
 * a hand-off in each direction, which is what the context-switch columns show.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct io_queue {
	pthread_mutex_t lock;
	pthread_cond_t nonempty;
	struct kit_io **slots;  /* ring of capacity depth: never more in flight */
	unsigned cap, head, count;
};

struct pool {
	struct kit_thread *t;
	struct io_queue work;   /* job thread -> workers */
	struct io_queue done;   /* workers -> job thread */
	int stopping;           /* under work.lock */
	pthread_t *workers;
	unsigned nworkers;
};

static int queue_init(struct io_queue *q, unsigned cap)
{
	q->slots = calloc(cap, sizeof(*q->slots));
	q->cap = cap;
	if (!q->slots)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->nonempty, NULL);
	return 0;
}

static void queue_destroy(struct io_queue *q)
{
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->nonempty);
	free(q->slots);
}

/* caller holds q->lock */
static void push(struct io_queue *q, struct kit_io *io)
{
	q->slots[(q->head + q->count++) % q->cap] = io;
}

static struct kit_io *pop(struct io_queue *q)
{
	struct kit_io *io = q->slots[q->head];

	q->head = (q->head + 1) % q->cap;
	q->count--;
	return io;
}

static void *worker_main(void *arg)
{
	struct pool *pl = arg;

	for (;;) {
		struct kit_io *io;

		pthread_mutex_lock(&pl->work.lock);
		while (!pl->work.count && !pl->stopping)
			pthread_cond_wait(&pl->work.nonempty, &pl->work.lock);
		if (!pl->work.count) {
			pthread_mutex_unlock(&pl->work.lock);
			return NULL;
		}
		io = pop(&pl->work);
		pthread_mutex_unlock(&pl->work.lock);

		kit_io_pread_pwrite(pl->t, io);

		pthread_mutex_lock(&pl->done.lock);
		push(&pl->done, io);
		pthread_cond_signal(&pl->done.nonempty);
		pthread_mutex_unlock(&pl->done.lock);
	}
}

static void pool_stop(struct pool *pl)
{
	unsigned i;

	pthread_mutex_lock(&pl->work.lock);
	pl->stopping = 1;
	pthread_cond_broadcast(&pl->work.nonempty);
	pthread_mutex_unlock(&pl->work.lock);
	for (i = 0; i < pl->nworkers; i++)
		pthread_join(pl->workers[i], NULL);
	queue_destroy(&pl->work);
	queue_destroy(&pl->done);
	free(pl->workers);
	free(pl);
}

static int threadpool_setup(struct kit_thread *t)
{
	unsigned want = t->p->threads ? t->p->threads : t->p->iodepth;
	struct pool *pl = calloc(1, sizeof(*pl));
	int r;

	if (!pl)
		return kit_fail(t, -ENOMEM, "threadpool: allocating the pool");
	pl->t = t;
	pl->workers = calloc(want, sizeof(*pl->workers));
	if (!pl->workers || queue_init(&pl->work, t->p->iodepth) ||
	    queue_init(&pl->done, t->p->iodepth)) {
		free(pl->workers);
		free(pl);
		return kit_fail(t, -ENOMEM, "threadpool: allocating queues");
	}
	for (pl->nworkers = 0; pl->nworkers < want; pl->nworkers++) {
		r = pthread_create(&pl->workers[pl->nworkers], NULL, worker_main, pl);
		if (r) {
			pool_stop(pl);
			return kit_fail(t, -r, "threadpool: starting worker thread %u of %u",
					pl->nworkers + 1, want);
		}
	}
	t->s->threads_started = pl->nworkers;
	t->engine_data = pl;
	return 0;
}

static int threadpool_queue(struct kit_thread *t, struct kit_io *io)
{
	struct pool *pl = t->engine_data;

	pthread_mutex_lock(&pl->work.lock);
	push(&pl->work, io);
	pthread_cond_signal(&pl->work.nonempty);
	pthread_mutex_unlock(&pl->work.lock);
	return KIT_QUEUED;
}

static int threadpool_reap(struct kit_thread *t, unsigned min, unsigned max,
			   struct kit_io **done)
{
	struct pool *pl = t->engine_data;
	unsigned n = 0;

	pthread_mutex_lock(&pl->done.lock);
	while (pl->done.count < min)
		pthread_cond_wait(&pl->done.nonempty, &pl->done.lock);
	while (n < max && pl->done.count)
		done[n++] = pop(&pl->done);
	pthread_mutex_unlock(&pl->done.lock);
	return (int)n;
}

static void threadpool_teardown(struct kit_thread *t)
{
	pool_stop(t->engine_data);
}

const struct kit_engine kit_engine_threadpool = {
	.name = "threadpool",
	.setup = threadpool_setup,
	.queue = threadpool_queue,
	.reap = threadpool_reap,
	.teardown = threadpool_teardown,
};
