/*
 * engine.h - what an I/O engine implements and what the shared driver loop
 * (driver.c) gives it. Modelled on fio's struct ioengine_ops: the driver
 * owns offsets, timing, histograms, verification and limits; an engine only
 * moves I/Os between the driver and one kernel interface.
 */
#ifndef KIT_ENGINE_H
#define KIT_ENGINE_H

#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "kit.h"

/* queue() return values (negative values are -errno) */
#define KIT_QUEUED 0     /* accepted; the I/O completes later via reap() */
#define KIT_COMPLETED 1  /* done already: io->result is set */
#define KIT_STARTED 2    /* accepted and already under way (handed to a thread):
                          * issued now, whether or not the engine has commit() */

struct kit_io {
	uint64_t offset;
	uint32_t len;
	int file;               /* index into params->fds */
	int ddir;               /* KIT_DDIR_* */
	int index;              /* position in kit_thread.ios, stable */
	char *buf;
	uint64_t t_start;       /* when the driver began preparing it */
	uint64_t t_issue;       /* when the submit call that carried it returned */
	int64_t result;         /* bytes moved, or -errno; set by the engine */
	int inline_done;        /* queue() completed it (KIT_COMPLETED): no submission latency */
};

struct kit_thread {
	const struct kit_params *p;
	struct kit_io *ios;     /* iodepth entries, buffers attached */
	char *bufs;             /* one aligned allocation backing every buf */
	size_t buf_stride;
	void *engine_data;      /* owned by the engine: setup .. teardown */
	struct kit_stats *s;
};

struct kit_engine {
	const char *name;
	int sync;               /* queue() finishes every I/O itself */
	int (*setup)(struct kit_thread *t);
	int (*queue)(struct kit_thread *t, struct kit_io *io);
	int (*commit)(struct kit_thread *t);
	/* Waits for at least min completions (min may be 0), returns how many
	 * were stored in done[] (at most max), or -errno. */
	int (*reap)(struct kit_thread *t, unsigned min, unsigned max,
		    struct kit_io **done);
	void (*teardown)(struct kit_thread *t);
	const char *framework;  /* the library it measures and its version, or NULL */
	int shared_files;       /* its helper threads serve the whole process: the
	                         * job thread keeps the process's descriptor table */
	unsigned max_batch;     /* queue() submits by itself once this many wait for
	                         * commit() (a library's own batching): the driver
	                         * commits before; 0: no limit */
};

/* Records a setup or kernel-interface failure with its context; returns err
 * so engines can write `return kit_fail(t, -errno, "io_setup(%u)", n);`. */
int kit_fail(struct kit_thread *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A system call of up to four arguments, made in place: -errno on failure.
 * Not glibc's syscall() (a call, its own argument shuffle and errno in
 * thread-local storage), nor pread() (cancellation bookkeeping in a
 * process of several threads): a sync engine makes one per I/O, and every
 * return after a system call is a return the CPU mispredicts (the kernel's
 * calls have overwritten its return stack), so the fewer the better. */
static inline long kit_syscall4(long nr, long a, long b, long c, long d)
{
#if defined(__x86_64__)
	long r;
	register long r10 __asm__("r10") = d;

	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
#else
	long r = syscall(nr, a, b, c, d);

	return r < 0 ? -errno : r;
#endif
}

/* Blocking read or write of one I/O at its offset; sets io->result. */
static inline void kit_io_pread_pwrite(struct kit_thread *t, struct kit_io *io)
{
	long nr = io->ddir == KIT_DDIR_READ ? SYS_pread64 : SYS_pwrite64, r;

	do
		r = kit_syscall4(nr, t->p->fds[io->file], (long)io->buf, (long)io->len, (long)io->offset);
	while (r == -EINTR);
	io->result = r;
}

const struct kit_engine *kit_engine_get(int index);

#endif
