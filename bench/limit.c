/*
 * limit.c - the bare loop: what each engine's system calls allow, with no
 * instrument around them. 4 KiB random reads of one file for a while,
 * keeping only a count and the summed latency (one clock read per I/O at
 * submission, one per completion batch: kit's clock, the TSC when the kernel
 * uses it, else clock_gettime). Built by bench/overhead.py with kit's flags.
 *
 *     limit ENGINE PATH SECONDS [IODEPTH [RAMP_SECONDS]]
 *     ENGINE: psync | posixaio | libaio | io_uring | io_uring-fixed
 *
 * Prints "ios=N lat_sum_ns=N seconds=F cpu_seconds=F usr_seconds=F" on one line
 * (CPU: this thread's user + system time, user time alone).
 */
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define BS 4096
#define MAX_DEPTH 64
#define CLOCK_EVERY 64          /* I/Os between deadline checks */

static int use_tsc;
static uint64_t tsc0, ns0, mult;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void calibrate(void)
{
	char name[16] = {0};
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	uint64_t t0, t1, c0, c1;

	if (!f)
		return;
	if (!fgets(name, sizeof(name), f) || strcmp(name, "tsc\n")) {
		fclose(f);
		return;
	}
	fclose(f);
	t0 = mono_ns();
	c0 = __rdtsc();
	while ((t1 = mono_ns()) - t0 < 20000000ull)
		;
	c1 = __rdtsc();
	mult = (uint64_t)((((unsigned __int128)(t1 - t0)) << 32) / (c1 - c0));
	tsc0 = c1;
	ns0 = t1;
	use_tsc = 1;
}

static inline uint64_t now(void)
{
	if (use_tsc)
		return ns0 + (uint64_t)(((unsigned __int128)(__rdtsc() - tsc0) * mult) >> 32);
	return mono_ns();
}

static uint64_t rng = 0x9E3779B97F4A7C15ull, nblocks;

static inline uint64_t next_offset(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng % nblocks) * BS;
}

static uint64_t ios, lat_sum, deadline, ramp_end;
static uint64_t measure_start;
static struct rusage ru0;

/* like kit and fio, what ran before the ramp's end is not counted */
static inline void ramp_check(uint64_t t)
{
	if (ramp_end && t >= ramp_end) {
		ramp_end = 0;
		ios = lat_sum = 0;
		measure_start = t;
		getrusage(RUSAGE_THREAD, &ru0);
	}
}
static char *bufs;

/* user + system time of this thread (what kit and fio report per job thread;
 * posixaio's glibc helpers are in none of the three) */
static double cpu_seconds(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "limit: %s: %s\n", what, strerror(err));
	exit(1);
}

static void run_psync(int fd)
{
	while (1) {
		uint64_t t0 = now();

		if (pread(fd, bufs, BS, (off_t)next_offset()) != BS)
			die("pread", errno);
		lat_sum += now() - t0;
		if (++ios % CLOCK_EVERY == 0) {
			uint64_t t = now();

			ramp_check(t);
			if (t >= deadline)
				return;
		}
	}
}

static void run_posixaio(int fd, unsigned depth)
{
	struct aiocb cbs[MAX_DEPTH];
	const struct aiocb *list[MAX_DEPTH];
	uint64_t start[MAX_DEPTH];
	unsigned i;
	int stopping = 0, inflight = 0;

	memset(cbs, 0, sizeof(cbs));
	for (i = 0; i < depth; i++) {
		cbs[i].aio_fildes = fd;
		cbs[i].aio_buf = bufs + (size_t)i * BS;
		cbs[i].aio_nbytes = BS;
		cbs[i].aio_sigevent.sigev_notify = SIGEV_NONE;
		cbs[i].aio_offset = (off_t)next_offset();
		start[i] = now();
		if (aio_read(&cbs[i]))
			die("aio_read", errno);
		list[i] = &cbs[i];
		inflight++;
	}
	while (inflight) {
		uint64_t t;

		if (aio_suspend(list, (int)depth, NULL) && errno != EINTR && errno != EAGAIN)
			die("aio_suspend", errno);
		t = now();
		ramp_check(t);
		stopping = stopping || t >= deadline;
		for (i = 0; i < depth; i++) {
			if (!list[i] || aio_error(&cbs[i]) == EINPROGRESS)
				continue;
			if (aio_return(&cbs[i]) != BS)
				die("aio_return", EIO);
			lat_sum += t - start[i];
			ios++;
			if (stopping) {
				list[i] = NULL;
				inflight--;
				continue;
			}
			cbs[i].aio_offset = (off_t)next_offset();
			start[i] = now();
			if (aio_read(&cbs[i]))
				die("aio_read", errno);
		}
	}
}

static void run_libaio(int fd, unsigned depth)
{
	io_context_t ctx = 0;
	struct iocb cbs[MAX_DEPTH], *batch[MAX_DEPTH];
	struct io_event events[MAX_DEPTH];
	uint64_t start[MAX_DEPTH];
	unsigned free_slots[MAX_DEPTH], nfree = depth, i;
	int r, inflight = 0, stopping = 0;

	if ((r = io_setup((int)depth, &ctx)) < 0)
		die("io_setup", -r);
	for (i = 0; i < depth; i++)
		free_slots[i] = i;
	while (!stopping || inflight) {
		unsigned n = 0;
		uint64_t t;

		while (!stopping && nfree) {
			unsigned s = free_slots[--nfree];

			io_prep_pread(&cbs[s], fd, bufs + (size_t)s * BS, BS, (long long)next_offset());
			cbs[s].data = (void *)(uintptr_t)s;
			batch[n++] = &cbs[s];
		}
		if (n) {
			t = now();
			for (i = 0; i < n; i++)
				start[(uintptr_t)batch[i]->data] = t;
			if ((r = io_submit(ctx, n, batch)) != (int)n)
				die("io_submit", r < 0 ? -r : EAGAIN);
			inflight += n;
		}
		if ((r = io_getevents(ctx, 1, depth, events, NULL)) < 0)
			die("io_getevents", -r);
		t = now();
		for (i = 0; i < (unsigned)r; i++) {
			unsigned s = (unsigned)(uintptr_t)events[i].data;

			if (events[i].res != BS)
				die("read", EIO);
			lat_sum += t - start[s];
			free_slots[nfree++] = s;
		}
		ios += (unsigned)r;
		inflight -= r;
		ramp_check(t);
		stopping = stopping || t >= deadline;
	}
	io_destroy(ctx);
}

static void run_io_uring(int fd, unsigned depth, int fixed)
{
	struct io_uring ring;
	struct io_uring_cqe *cqes[MAX_DEPTH];
	struct iovec iov[MAX_DEPTH];
	uint64_t start[MAX_DEPTH];
	unsigned free_slots[MAX_DEPTH], nfree = depth, i;
	int r, inflight = 0, stopping = 0;

	/* the ring kit's io_uring engine (and fio 3.33) asks for */
	struct io_uring_params prm = { .flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN |
					IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
				       .cq_entries = 2 * depth };

	if ((r = io_uring_queue_init_params(depth, &ring, &prm)) < 0)
		die("io_uring_queue_init", -r);
	for (i = 0; i < depth; i++) {
		free_slots[i] = i;
		iov[i].iov_base = bufs + (size_t)i * BS;
		iov[i].iov_len = BS;
	}
	if (fixed && ((r = io_uring_register_buffers(&ring, iov, depth)) < 0 ||
		      (r = io_uring_register_files(&ring, &fd, 1)) < 0))
		die("io_uring_register", -r);
	while (!stopping || inflight) {
		unsigned n = 0, got;
		uint64_t t;

		while (!stopping && nfree) {
			unsigned s = free_slots[--nfree];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (fixed) {
				io_uring_prep_read_fixed(sqe, 0, iov[s].iov_base, BS, next_offset(), (int)s);
				sqe->flags |= IOSQE_FIXED_FILE;
			} else {
				io_uring_prep_read(sqe, fd, iov[s].iov_base, BS, next_offset());
			}
			sqe->user_data = s;
			n++;
		}
		if (n) {
			t = now();
			for (i = nfree; i < nfree + n; i++)
				start[free_slots[i]] = t;
			if ((r = io_uring_submit_and_wait(&ring, 1)) < 0)
				die("io_uring_submit", -r);
			inflight += n;
		} else if ((r = io_uring_wait_cqe(&ring, cqes)) < 0) {
			die("io_uring_wait_cqe", -r);
		}
		got = io_uring_peek_batch_cqe(&ring, cqes, depth);
		t = now();
		for (i = 0; i < got; i++) {
			if (cqes[i]->res != BS)
				die("read", cqes[i]->res < 0 ? -cqes[i]->res : EIO);
			lat_sum += t - start[cqes[i]->user_data];
			free_slots[nfree++] = (unsigned)cqes[i]->user_data;
		}
		io_uring_cq_advance(&ring, got);
		ios += got;
		inflight -= (int)got;
		ramp_check(t);
		stopping = stopping || t >= deadline;
	}
	io_uring_queue_exit(&ring);
}

int main(int argc, char **argv)
{
	unsigned depth = argc > 4 ? (unsigned)atoi(argv[4]) : 1;
	double seconds, ramp = argc > 5 ? atof(argv[5]) : 0;
	struct stat st;
	struct rusage ru1;
	uint64_t t0, t1;
	int fd;

	if (argc < 4 || depth < 1 || depth > MAX_DEPTH) {
		fprintf(stderr, "usage: limit psync|posixaio|libaio|io_uring|io_uring-fixed PATH SECONDS [IODEPTH<=%d [RAMP]]\n",
			MAX_DEPTH);
		return 2;
	}
	seconds = atof(argv[3]);
	fd = open(argv[2], O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		die(argv[2], errno);
	nblocks = (uint64_t)st.st_size / BS;
	if (!nblocks || posix_memalign((void **)&bufs, 4096, (size_t)MAX_DEPTH * BS))
		die("setup", EINVAL);
	memset(bufs, 0, (size_t)MAX_DEPTH * BS);
	calibrate();
	getrusage(RUSAGE_THREAD, &ru0);
	t0 = measure_start = now();
	deadline = t0 + (uint64_t)((ramp + seconds) * 1e9);
	ramp_end = ramp > 0 ? t0 + (uint64_t)(ramp * 1e9) : 0;
	if (!strcmp(argv[1], "psync"))
		run_psync(fd);
	else if (!strcmp(argv[1], "posixaio"))
		run_posixaio(fd, depth);
	else if (!strcmp(argv[1], "libaio"))
		run_libaio(fd, depth);
	else if (!strcmp(argv[1], "io_uring"))
		run_io_uring(fd, depth, 0);
	else if (!strcmp(argv[1], "io_uring-fixed"))
		run_io_uring(fd, depth, 1);
	else
		die(argv[1], EINVAL);
	t1 = now();
	getrusage(RUSAGE_THREAD, &ru1);
	printf("ios=%llu lat_sum_ns=%llu seconds=%.6f cpu_seconds=%.6f usr_seconds=%.6f\n", (unsigned long long)ios,
	       (unsigned long long)lat_sum, (double)(t1 - measure_start) / 1e9, cpu_seconds(&ru1) - cpu_seconds(&ru0),
	       (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6);
	return 0;
}
