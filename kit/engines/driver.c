/*
 * driver.c - the loop every engine runs inside.
 *
 * One call of kit_job_run() is one job thread: it sets the engine up, waits
 * at the start barrier, keeps iodepth I/Os in flight until a limit is hit,
 * drains, records its statistics and tears the engine down. Everything per
 * I/O here is on the hot path: no allocation, no locks, at most one clock
 * read per I/O plus one per submit and per reap batch (fio's budget too).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif
#include <pthread.h>
#include <sched.h>

#include "engine.h"
#include "verify.h"
#include "plat.h"

#define BUF_ALIGN 4096
/* What only some jobs do (an option's work): kept out of the per-I/O path's
 * instructions, so that the path stays a few cache lines the CPU still has
 * when a system call returns (the kernel's own code has evicted the rest) */
#define RARE __attribute__((cold))
/* ... and the path itself one function, whatever the compiler's budget */
#define HOT inline __attribute__((always_inline))
#define CLOCK_CHECK_EVERY 64   /* loop turns between clock reads with gtod_reduce */

struct file_state {
	uint64_t base;          /* where the region starts in the file */
	uint64_t region;        /* its bytes */
	uint64_t nblocks;       /* of min_bs: the units offsets are in */
	uint64_t next_seq[KIT_DDIR_NR];     /* sequential: each direction's next byte (fio's last_pos) */
	uint64_t perm_pos;      /* random map: position in this pass */
	uint64_t pass;          /* passes over the region completed */
	int done;               /* all passes done (fio's "file done") */
	unsigned bits;          /* random map: blocks < 2^bits */
	uint64_t mask;
	uint64_t *used;         /* random map with sizes above min_bs: blocks
	                         * covered in this pass (fio's axmap) */
	uint64_t used_count;    /* blocks covered in this pass */
	uint64_t *written;      /* verify: one bit per block written */
	uint64_t verify_next;   /* verify phase: next block to look at */
	int is_block;           /* trims are BLKDISCARD, else punched holes */
	/* random_distribution: fio's zipf/pareto/normal state */
	double zetan, zeta2, alpha, eta, pareto_pow;
	uint64_t rand_off;
};

/* the running totals a time series window is the difference of */
struct series_totals {
	uint64_t bytes[KIT_DDIR_NR], ios[KIT_DDIR_NR];
	uint64_t slat[KIT_DDIR_NR], clat[KIT_DDIR_NR], lat[KIT_DDIR_NR];
};

/* I/Os reaped together with the same timestamps (see account_reaped) */
struct lat_group {
	uint64_t k;
	uint64_t t_start, t_issue, t_done;
	int ddir, synchronous;
};

struct driver {
	struct kit_thread t;
	const struct kit_engine *e;
	struct file_state *files;
	struct kit_io **free_ios;   /* stack of idle I/Os */
	unsigned nfree;
	struct kit_io **done;       /* reap() fills this */
	struct kit_io **pending;    /* queued but not yet committed */
	unsigned npending;
	unsigned inflight;          /* submitted, not yet reaped */
	unsigned depth;
	int next_file;
	uint64_t rng[4];            /* xoshiro256** */
	uint64_t buf_rng;           /* buffer content's (splitmix64): the offsets' stream stays randseed's */
	uint64_t issued_ios;        /* measured interval only */
	uint64_t issued_bytes;
	uint64_t writes_since_fsync;
	uint64_t writes_since_fdatasync;
	uint64_t epoch;             /* the job's start, after any startdelay */
	int variable_bs;            /* some direction has sizes above min_bs */
	uint64_t rate_bytes[KIT_DDIR_NR];   /* issued since the epoch, for pacing */
	uint64_t rate_next[KIT_DDIR_NR];    /* poisson: when the next I/O is due */
	uint64_t done_bytes[KIT_DDIR_NR];   /* completed since the epoch */
	uint64_t done_ios[KIT_DDIR_NR];
	uint64_t completed;         /* all directions, for thinktime_blocks */
	uint64_t last_think;
	uint64_t rate_check_at;     /* next rate_min check; 0: none */
	uint64_t rate_base_ns;
	uint64_t rate_base_bytes[KIT_DDIR_NR];
	uint64_t rate_base_ios[KIT_DDIR_NR];
	int rate_baseline;
	uint64_t now;               /* latest clock reading */
	uint64_t ramp_end;          /* 0 once ramping is over */
	uint64_t deadline;          /* 0: none */
	struct rusage ru0;
	unsigned loop_turns;
	int burst_timed;            /* the current issue burst has its start time */
	int private_files;          /* the thread has a descriptor table of its own */
	int stop_issuing;
	int verifying;              /* in the verify phase: reads of what was written */
	int verify_file;
	struct lat_group group;     /* account_reaped(): latencies not yet in the statistics */
	uint64_t window_end_ns;     /* the first open series window ends here */
	struct series_totals series_base[KIT_GRIDS];    /* at each grid's open window's start */
};

/* ---- time ----------------------------------------------------------------
 * Per-I/O timestamps come from the TSC when the kernel itself uses it as its
 * clocksource (so it is invariant and synchronized across CPUs), as fio does:
 * half the cost of clock_gettime() and twice per I/O. The TSC is calibrated
 * once against CLOCK_MONOTONIC and read as nanoseconds on that timeline. */

#define CALIBRATE_NS 20000000ull

static struct {
	int use_tsc;
	uint64_t tsc0, ns0;
	uint64_t mult;          /* ns per cycle, 32.32 fixed point */
} clk;
static pthread_once_t clk_once = PTHREAD_ONCE_INIT;

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int kernel_uses_tsc(void)
{
	char name[16] = {0};
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

	if (!f)
		return 0;
	if (!fgets(name, sizeof(name), f))
		name[0] = 0;
	fclose(f);
	return strcmp(name, "tsc\n") == 0;
}

static void clock_calibrate(void)
{
#if defined(__x86_64__)
	uint64_t t0, t1, c0, c1;

	if (!kernel_uses_tsc())
		return;
	t0 = mono_ns();
	c0 = __rdtsc();
	while ((t1 = mono_ns()) - t0 < CALIBRATE_NS)
		;
	c1 = __rdtsc();
	if (c1 <= c0)
		return;
	clk.mult = (uint64_t)((((unsigned __int128)(t1 - t0)) << 32) / (c1 - c0));
	clk.tsc0 = c1;
	clk.ns0 = t1;
	clk.use_tsc = 1;
#endif
}

static HOT uint64_t now_ns(void)
{
#if defined(__x86_64__)
	if (clk.use_tsc)
		return clk.ns0 + (uint64_t)(((unsigned __int128)(__rdtsc() - clk.tsc0) * clk.mult) >> 32);
#endif
	return mono_ns();
}

static uint64_t tv_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000000ull + tv->tv_usec * 1000ull;
}

/* ---- histograms (fio's io_u_plat layout, stat.c) ------------------------- */

unsigned kit_plat_val_to_idx(uint64_t val)
{
	return plat_val_to_idx(val);
}

uint64_t kit_plat_idx_to_val(unsigned idx)
{
	unsigned error_bits;
	uint64_t base, k;

	if (idx < (KIT_PLAT_VAL << 1))
		return idx;
	error_bits = (idx >> KIT_PLAT_BITS) - 1;
	base = 1ull << (error_bits + KIT_PLAT_BITS);
	k = idx % KIT_PLAT_VAL;
	return base + (uint64_t)((k + 0.5) * (double)(1ull << error_bits));
}

static void lat_reset(struct kit_lat *l)
{
	memset(l, 0, sizeof(*l));
	l->min = UINT64_MAX;
}

/* k I/Os of latency v: a burst submitted together and reaped together
 * shares its timestamps, so its I/Os are one update (account_reaped) */
static HOT void lat_add_n(struct kit_lat *l, uint64_t v, uint64_t k)
{
	l->n += k;
	if (v < l->min)
		l->min = v;
	if (v > l->max)
		l->max = v;
	/* integer sums cost one add and stay exact; the square needs the
	 * range of a double (a latency is far below 2^63 ns: the signed
	 * conversion is one instruction, the unsigned one a branchy sequence) */
	double x = (double)(int64_t)v;

	l->sum += v * k;
	l->sumsq += x * x * (double)(int64_t)k;
	l->hist[plat_val_to_idx(v)] += k;
}

static inline void lat_add(struct kit_lat *l, uint64_t v)
{
	lat_add_n(l, v, 1);
}

static HOT void depth_add(uint64_t *hist, unsigned depth, uint64_t n)
{
	hist[depth < KIT_DEPTH_MAX ? depth : KIT_DEPTH_MAX] += n;
}

static void stats_reset(struct kit_stats *s)
{
	int d;

	for (d = 0; d < KIT_DDIR_NR; d++) {
		s->ddir[d].ios = s->ddir[d].bytes = 0;
		lat_reset(&s->ddir[d].slat);
		lat_reset(&s->ddir[d].clat);
		lat_reset(&s->ddir[d].lat);
	}
	s->syncs = 0;
	lat_reset(&s->sync_lat);
	memset(s->depth_level, 0, sizeof(s->depth_level));
	memset(s->depth_submit, 0, sizeof(s->depth_submit));
	memset(s->depth_complete, 0, sizeof(s->depth_complete));
	s->verified_bytes = 0;
}

/* ---- time series ---------------------------------------------------------
 * Windows of what completed, on a fixed grid from the start (fio's helper
 * thread samples every bwavgtime ms, on the same grid): a window is closed
 * at the first completion at or after its end, and ends at its nominal end,
 * so windows never drift or shrink. A window with no completion is closed
 * empty (it is no sample: fio skips an interval that moved nothing).
 * A window is the difference of the running totals (kit_ddir_stats) at its
 * two ends: the I/O path only compares its clock with the next window's
 * end. Records of single I/Os are kept apart. Appending may allocate:
 * amortized. */

#define SERIES_EMPTY_MAX 100000     /* an idle gap longer than this many windows is one window */

/* what the directions had completed, integers: the sums are exact */
static void series_totals(const struct driver *d, struct series_totals *t)
{
	const struct kit_stats *s = d->t.s;
	int dd;

	for (dd = 0; dd < KIT_DDIR_NR; dd++) {
		const struct kit_ddir_stats *ds = &s->ddir[dd];

		t->bytes[dd] = ds->bytes;
		t->ios[dd] = ds->ios;
		t->slat[dd] = ds->slat.sum;
		t->clat[dd] = ds->clat.sum;
		/* a sync engine's lat is its clat (finish_sync_stats) */
		t->lat[dd] = d->e->sync ? ds->clat.sum : ds->lat.sum;
	}
}

/* se->open, made from the totals now and at the window's start */
static void series_fill_open(struct driver *d, int which)
{
	struct kit_series *se = &d->t.s->series[which];
	const struct series_totals *base = &d->series_base[which];
	struct series_totals now;
	int dd;

	series_totals(d, &now);
	for (dd = 0; dd < KIT_DDIR_NR; dd++) {
		se->open.bytes[dd] = now.bytes[dd] - base->bytes[dd];
		se->open.ios[dd] = now.ios[dd] - base->ios[dd];
		se->open.slat_sum[dd] = (double)(now.slat[dd] - base->slat[dd]);
		se->open.clat_sum[dd] = (double)(now.clat[dd] - base->clat[dd]);
		se->open.lat_sum[dd] = (double)(now.lat[dd] - base->lat[dd]);
	}
	d->series_base[which] = now;
}

/* when the first of the series' open windows ends (UINT64_MAX: never) */
static void series_next_end(struct driver *d)
{
	int i;

	d->window_end_ns = UINT64_MAX;
	for (i = 0; i < KIT_GRIDS; i++) {
		struct kit_series *se = &d->t.s->series[i];
		uint64_t end = se->open_ns + se->interval_ns;

		if (se->interval_ns && (!se->until_ns || end < se->until_ns) && end < d->window_end_ns)
			d->window_end_ns = end;
	}
}

static void series_start(struct driver *d, uint64_t now)
{
	int i;

	for (i = 0; i < KIT_GRIDS; i++) {
		struct kit_series *se = &d->t.s->series[i];

		se->n = 0;              /* a ramp's windows are not kept */
		se->interval_ns = d->t.p->window_ns[i];
		se->until_ns = d->deadline;
		memset(&se->open, 0, sizeof(se->open));
		se->open_ns = now;
		series_totals(d, &d->series_base[i]);
	}
	series_next_end(d);
}

static int grow(void **buf, uint64_t *cap, size_t size)
{
	uint64_t n = *cap ? *cap * 2 : 256;
	void *p = realloc(*buf, n * size);

	if (!p)
		return -1;
	*buf = p;
	*cap = n;
	return 0;
}

static void series_close(struct driver *d, int which, uint64_t end)
{
	struct kit_stats *s = d->t.s;
	struct kit_series *se = &s->series[which];

	if (se->n == se->cap && grow((void **)&se->w, &se->cap, sizeof(*se->w))) {
		s->series_truncated = 1;
		se->interval_ns = 0;
		return;
	}
	series_fill_open(d, which);
	se->open.end_ns = end;
	se->open.span_ns = end - se->open_ns;
	se->w[se->n++] = se->open;
	memset(&se->open, 0, sizeof(se->open));
	se->open_ns = end;
}

/* Closes every window that ended at or before `now`: called before the
 * completions of `now` are counted (and with the latency group flushed),
 * so that they open the next window. */
static void __attribute__((noinline)) series_advance(struct driver *d, uint64_t now)
{
	int which;

	for (which = 0; which < KIT_GRIDS; which++) {
		struct kit_series *se = &d->t.s->series[which];
		uint64_t closed = 0;

		while (se->interval_ns && now >= se->open_ns + se->interval_ns &&
		       (!se->until_ns || se->open_ns + se->interval_ns < se->until_ns)) {
			uint64_t end = se->open_ns + se->interval_ns;

			/* the first window closed holds what completed; after it
			 * SERIES_EMPTY_MAX empty ones, then the rest of the gap in one */
			if (++closed > SERIES_EMPTY_MAX + 1)
				end = se->open_ns + (now - se->open_ns) / se->interval_ns * se->interval_ns;
			series_close(d, which, end);
		}
	}
	series_next_end(d);
}

static inline void record_io(struct kit_stats *s, const struct kit_io *io, uint64_t now,
			     uint64_t slat, uint64_t clat, uint64_t lat)
{
	struct kit_io_records *rs = &s->records;
	struct kit_io_record *r;

	if (s->series_truncated)
		return;
	if (rs->n == rs->cap && grow((void **)&rs->r, &rs->cap, sizeof(*rs->r))) {
		s->series_truncated = 1;
		return;
	}
	r = &rs->r[rs->n++];
	r->end_ns = now;
	r->slat = slat;
	r->clat = clat;
	r->lat = lat;
	r->offset = io->offset;
	r->len = io->len;
	r->ddir = (uint32_t)io->ddir;
}

void kit_stats_free(struct kit_stats *s)
{
	int i;

	for (i = 0; i < KIT_GRIDS; i++) {
		free(s->series[i].w);
		s->series[i].w = NULL;
		s->series[i].n = 0;
	}
	free(s->records.r);
	s->records.r = NULL;
	s->records.n = 0;
}

/* ---- random numbers and offsets ------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static HOT uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static HOT uint64_t rand64(struct driver *d)
{
	uint64_t *s = d->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* ---- what writes carry (verify off) --------------------------------------- */

/* fio's fill_io_buffer: random bytes, zeros, or buffer_compress_percentage's
 * chunks of random bytes followed by zeros (fill_random_buf_percentage) */
static void fill_buffer(struct driver *d, unsigned char *buf, uint64_t len)
{
	const struct kit_params *p = d->t.p;
	uint64_t done = 0, i;

	if (p->buffer_fill == KIT_FILL_ZERO) {
		memset(buf, 0, len);
		return;
	}
	while (done < len) {
		uint64_t chunk = p->buffer_fill == KIT_FILL_COMPRESS && p->compress_chunk ? p->compress_chunk : len;
		uint64_t random_part;

		/* a last piece shorter than the chunk is its own chunk, as fio's
		 * this_write: it gets its share of zeros too */
		if (chunk > len - done)
			chunk = len - done;
		random_part = p->buffer_fill == KIT_FILL_COMPRESS ? chunk * (100 - p->compress_percentage) / 100 : chunk;
		for (i = 0; i + 8 <= random_part; i += 8) {
			uint64_t w = splitmix64(&d->buf_rng);

			memcpy(buf + done + i, &w, 8);
		}
		if (i < random_part) {
			uint64_t w = splitmix64(&d->buf_rng);

			memcpy(buf + done + i, &w, random_part - i);
		}
		memset(buf + done + random_part, 0, chunk - random_part);
		done += chunk;
	}
}

/* fio's small_content_scramble: the write's offset in one of the first 8
 * cache lines of each 512 bytes, and the time at the end of the first, so
 * that no two written blocks are alike (deduplicating storage would
 * otherwise store one copy of every buffer) */
static void scramble_buffer(unsigned char *buf, uint64_t len, uint64_t offset, uint64_t now)
{
	uint64_t when[2] = { now / 1000000000ull, now % 1000000000ull }, i;
	unsigned line = (unsigned)((when[1] ^ offset) & 7);

	for (i = 0; i + 512 <= len; i += 512, offset += 512) {
		memcpy(buf + i + line * 64, &offset, 8);
		memcpy(buf + i + 64 - sizeof(when), when, sizeof(when));
	}
}

/* A bijection on [0, 2^bits): xor with a key, then multiply-xorshift rounds
 * (odd multipliers and right xorshifts are both invertible mod 2^bits). */
static HOT uint64_t mix_bits(uint64_t x, uint64_t key, unsigned bits,
				uint64_t mask)
{
	unsigned shift = (bits + 1) / 2;

	x = (x ^ key) & mask;
	x = (x * 0xD6E8FEB86659FD93ull) & mask;
	x ^= x >> shift;
	x = (x * 0xBF58476D1CE4E5B9ull) & mask;
	x ^= x >> shift;
	x = (x * 0x94D049BB133111EBull) & mask;
	x ^= x >> shift;
	return x;
}

/* The random map: each pass visits every block of the file exactly once in a
 * seeded order (cycle-walking the bijection down to [0, nblocks)), so a
 * size-limited random job touches each block once, as fio's does. */
static uint64_t next_random_block(struct driver *d, struct file_state *f)
{
	uint64_t key = d->t.p->seed * 0x9E3779B97F4A7C15ull + f->pass * 0xC2B2AE3D27D4EB4Full;
	uint64_t x = f->perm_pos;

	if (f->nblocks == 1)
		x = 0;
	else
		do
			x = mix_bits(x, key, f->bits, f->mask);
		while (x >= f->nblocks);
	if (++f->perm_pos == f->nblocks) {
		f->perm_pos = 0;
		f->pass++;
	}
	return x;
}

/* The verify phase's next block: the files in turn, each block written in
 * ascending order (fio reads its written pieces back sorted too). */
static RARE int next_verify_block(struct driver *d, int *file, uint64_t *block)
{
	const struct kit_params *p = d->t.p;

	for (; d->verify_file < p->nfiles; d->verify_file++) {
		struct file_state *f = &d->files[d->verify_file];

		while (f->verify_next < f->nblocks) {
			uint64_t b = f->verify_next, word = f->written[b / 64] >> (b % 64);

			if (!word) {            /* nothing written in the rest of this word */
				f->verify_next = (b | 63) + 1;
				continue;
			}
			b += (uint64_t)__builtin_ctzll(word);
			if (b >= f->nblocks)
				break;
			f->verify_next = b + 1;
			*file = d->verify_file;
			*block = b;
			return 1;
		}
	}
	return 0;
}

static RARE void prepare_verify_io(struct driver *d, struct kit_io *io, int file, uint64_t block)
{
	io->file = file;
	io->offset = d->files[file].base + block * d->t.p->min_bs;
	io->len = d->t.p->min_bs;
	io->ddir = KIT_DDIR_READ;
	io->result = 0;
}

/* ---- random_distribution (fio's lib/zipf.c and lib/gauss.c) --------------
 * The drawn rank is scattered over the file by fio's hash, so hot blocks are
 * not contiguous, exactly as fio places them. */

#define DIST_HASH 0x61C8864680B583EBull
#define ZETA_TERMS 10000000ull

static inline double rand_unit(struct driver *d)
{
	return (double)(rand64(d) >> 11) * (1.0 / 9007199254740992.0);   /* [0, 1) */
}

static void dist_setup(struct driver *d, struct file_state *f)
{
	const struct kit_params *p = d->t.p;
	uint64_t n = f->nblocks, i, terms = n < ZETA_TERMS ? n : ZETA_TERMS;
	double theta = p->dist_param;

	if (p->dist == KIT_DIST_ZIPF) {
		f->zetan = 0;
		for (i = 1; i <= terms; i++)
			f->zetan += pow((double)i, -theta);
		f->zeta2 = 1.0 + pow(0.5, theta);
		f->alpha = 1.0 / (1.0 - theta);
		f->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - f->zeta2 / f->zetan);
	} else if (p->dist == KIT_DIST_PARETO) {
		f->pareto_pow = log(theta) / log(1.0 - theta);
	}
	if (p->dist_center >= 0)
		f->rand_off = p->dist == KIT_DIST_NORMAL ?
			(uint64_t)((double)n * (p->dist_center - 0.5) + (double)n) % n :
			(uint64_t)((double)n * p->dist_center) % n;
	else
		f->rand_off = p->dist == KIT_DIST_NORMAL ? 0 : rand64(d) % n;
}

static RARE uint64_t dist_block(struct driver *d, struct file_state *f)
{
	const struct kit_params *p = d->t.p;
	uint64_t n = f->nblocks, v;
	double u;

	if (n == 1)
		return 0;
	if (p->dist == KIT_DIST_ZIPF) {
		double uz;

		u = rand_unit(d);
		uz = u * f->zetan;
		if (uz < 1.0)
			v = 1;
		else if (uz < f->zeta2)
			v = 2;
		else
			v = 1 + (uint64_t)((double)n * pow(f->eta * u - f->eta + 1.0, f->alpha));
		v--;
	} else if (p->dist == KIT_DIST_PARETO) {
		v = (uint64_t)((double)(n - 1) * pow(rand_unit(d), f->pareto_pow));
	} else {                        /* normal: Irwin-Hall bell around n/2, plus jitter */
		uint64_t sum = 0;
		int k;

		for (k = 0; k < 12; k++)
			sum += rand64(d) % (n + 1);
		v = (sum + 11) / 12;
		if (p->dist_param > 0) {
			uint64_t sd = (uint64_t)ceil((double)n * p->dist_param / 100.0);
			double dev;

			if (sd > n / 2)
				sd = n / 2;
			dev = (rand_unit(d) - 0.5) * (double)sd;
			while (dev + (double)v >= (double)n)
				dev /= 2;
			v = (uint64_t)((double)v + dev);
		}
	}
	return (v * DIST_HASH + f->rand_off) % n;
}

/* ---- block sizes ---------------------------------------------------------- */

/* fio's get_next_buflen: a bssplit entry by percent (1% resolution), or a
 * size from min to max aligned down to min (so sizes are multiples of it). */
static uint32_t pick_len(struct driver *d, int ddir)
{
	const struct kit_bs *b = &d->t.p->bs[ddir];
	uint64_t len;
	uint32_t i;

	if (b->nsplit) {
		uint32_t r = (uint32_t)(rand64(d) % 100);

		for (i = 0; i < b->nsplit - 1; i++)
			if (r < b->split_cum[i])
				break;
		return b->split_bs[i];
	}
	if (b->min == b->max)
		return b->min;
	len = b->min + (uint64_t)(((unsigned __int128)rand64(d) * b->max) >> 64);
	len -= len % b->min;
	return (uint32_t)(len > b->max ? b->max : len);
}

/* The random map with sizes above min_bs: the I/O covers the blocks from
 * `block` up to the first one already covered in this pass (fio shrinks it
 * the same way), at least its direction's smallest size. */
static RARE uint32_t cover_blocks(struct driver *d, struct file_state *f, uint64_t block, uint32_t len, int ddir)
{
	uint32_t unit = d->t.p->min_bs, dmin = d->t.p->bs[ddir].min;
	uint64_t want = (len + unit - 1) / unit, k;

	for (k = 0; k < want && block + k < f->nblocks; k++) {
		uint64_t b = block + k;

		if (k && (f->used[b / 64] >> (b % 64)) & 1)
			break;
		f->used[b / 64] |= 1ull << (b % 64);
		f->used_count++;
	}
	if (k * unit < len) {
		uint64_t shrunk = (k * unit + dmin - 1) / dmin * dmin;

		len = (uint32_t)(shrunk < len ? shrunk : len);
	}
	return len;
}

/* Whether a file has had all its passes (fio's "file done"): sequential and
 * random-map jobs end there, unless io_size asks for more (passes 0). */
static HOT int passes_done(const struct kit_params *p, const struct file_state *f)
{
	return p->passes && f->pass >= p->passes;
}

#define NO_BLOCK UINT64_MAX

/* fio's random map with sizes above min_bs: a uniform block, or if that one
 * is covered already the next free one after it (axmap_next_free); a pass
 * ends when every block is covered. */
static RARE uint64_t next_free_block(struct driver *d, struct file_state *f)
{
	uint64_t b, words = (f->nblocks + 63) / 64, w, i;

	if (f->used_count >= f->nblocks) {
		f->pass++;
		if (passes_done(d->t.p, f))
			return NO_BLOCK;
		memset(f->used, 0, words * sizeof(uint64_t));
		f->used_count = 0;
	}
	b = (uint64_t)(((unsigned __int128)rand64(d) * f->nblocks) >> 64);
	if (!((f->used[b / 64] >> (b % 64)) & 1))
		return b;
	for (i = 0, w = b / 64; i <= words; i++, w = w + 1 == words ? 0 : w + 1) {
		uint64_t free_bits = ~f->used[w];

		if (i == 0)
			free_bits &= ~0ull << (b % 64);         /* at or after b */
		if (w == words - 1 && f->nblocks % 64)
			free_bits &= (1ull << (f->nblocks % 64)) - 1;
		if (free_bits)
			return w * 64 + (uint64_t)__builtin_ctzll(free_bits);
	}
	return b;       /* not reached: used_count < nblocks */
}

static inline uint64_t rate_due(struct driver *d, int ddir)
{
	const struct kit_params *p = d->t.p;

	if (p->rate_poisson)
		return d->rate_next[ddir];
	return d->epoch + (uint64_t)((unsigned __int128)d->rate_bytes[ddir] * 1000000000ull / p->rate_bps[ddir]);
}

/* The direction of the next I/O: rwmixread's draw, and then, as fio's
 * rate_ddir, a mixed job whose drawn direction must wait for its rate issues
 * the other one if that one may go now or is due sooner (fio sleeps the
 * shorter wait and switches: a slow direction does not hold up a fast one). */
static int next_ddir(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	uint64_t due;
	int ddir, other;

	if (p->trim)
		return KIT_DDIR_TRIM;
	if (p->rwmixread >= 100)
		return KIT_DDIR_READ;
	if (p->rwmixread <= 0)
		return KIT_DDIR_WRITE;
	ddir = (int)(rand64(d) % 100) < p->rwmixread ? KIT_DDIR_READ : KIT_DDIR_WRITE;
	if (!p->rate_bps[ddir] || d->verifying)
		return ddir;
	d->now = now_ns();
	other = ddir == KIT_DDIR_READ ? KIT_DDIR_WRITE : KIT_DDIR_READ;
	if ((due = rate_due(d, ddir)) <= d->now)
		return ddir;
	return !p->rate_bps[other] || rate_due(d, other) < due ? other : ddir;
}

/* Fills in the next I/O; returns 0 when every file has had its passes. */
static int prepare_io(struct driver *d, struct kit_io *io)
{
	const struct kit_params *p = d->t.p;
	struct file_state *f;
	uint64_t block, off;
	uint32_t len;
	int tries;

	for (tries = 0;; tries++) {
		if (tries > 2 * p->nfiles)
			return 0;
		io->file = d->next_file;
		if (++d->next_file == p->nfiles)
			d->next_file = 0;
		f = &d->files[io->file];
		if (f->done)
			continue;
		io->ddir = next_ddir(d);
		len = pick_len(d, io->ddir);
		if (!p->random) {
			/* each direction goes through the region on its own and
			 * starts over at its end, as fio's last_pos (rw=rw reads
			 * 0, 1, 2... and writes 0, 1, 2..., also across loops);
			 * the job's bytes (size x loops) end it first */
			uint64_t *next = &f->next_seq[io->ddir];

			if (*next + len > f->region) {
				/* fio's retry: a range or split size shrinks to what
				 * fits; else the pass is over, and the next starts over */
				uint64_t room = f->region > *next ? f->region - *next : 0;
				uint32_t dmin = p->bs[io->ddir].min;

				if (room >= dmin && p->bs[io->ddir].max > dmin) {
					len = (uint32_t)(room / dmin * dmin);
				} else {
					f->pass++;
					*next = 0;
					if (passes_done(p, f)) {
						f->done = 1;
						continue;
					}
				}
			}
			off = *next;
			block = off / p->min_bs;
		} else {
			if (p->dist != KIT_DIST_RANDOM) {
				block = dist_block(d, f);
			} else if (p->norandommap) {
				block = (uint64_t)(((unsigned __int128)rand64(d) * f->nblocks) >> 64);
			} else if (f->used) {
				if ((block = next_free_block(d, f)) == NO_BLOCK) {
					f->done = 1;
					continue;
				}
				len = cover_blocks(d, f, block, len, io->ddir);
			} else {
				if (passes_done(p, f)) {
					f->done = 1;
					continue;
				}
				block = next_random_block(d, f);
			}
			off = block * p->min_bs;
		}
		break;
	}
	if (off + len > f->region) {    /* a large size near the end: pulled back in */
		off = f->region >= len ? (f->region - len) / p->min_bs * p->min_bs : 0;
		if (off + len > f->region)
			len = (uint32_t)(f->region - off);
	}
	if (!p->random)
		f->next_seq[io->ddir] = off + len;
	io->offset = f->base + off;
	io->len = len;
	if (io->ddir == KIT_DDIR_WRITE) {
		if (p->verify) {
			kit_stamp_buffer(io->buf, io->len, io->offset, p->verify_seed);
			f->written[block / 64] |= 1ull << (block % 64);
		} else if (p->refill_buffers) {
			fill_buffer(d, io->buf, io->len);
		} else if (p->scramble_buffers) {
			scramble_buffer(io->buf, io->len, io->offset, d->now);
		}
	}
	io->result = 0;
	return 1;
}

/* ---- errors -------------------------------------------------------------- */

int kit_fail(struct kit_thread *t, int err, const char *fmt, ...)
{
	struct kit_stats *s = t->s;
	va_list ap;

	if (s->error)
		return err;
	s->error = err ? err : -EIO;
	s->error_kind = KIT_ERR_SETUP;
	s->error_file = -1;
	va_start(ap, fmt);
	vsnprintf(s->error_msg, sizeof(s->error_msg), fmt, ap);
	va_end(ap);
	return err;
}

static void io_fail(struct driver *d, struct kit_io *io, int kind, int err,
		    const char *msg)
{
	struct kit_stats *s = d->t.s;

	d->stop_issuing = 1;
	if (s->error)
		return;
	s->error = err;
	s->error_kind = kind;
	s->error_file = io->file;
	s->error_offset = io->offset;
	snprintf(s->error_msg, sizeof(s->error_msg), "%s", msg);
}

/* ---- barriers ------------------------------------------------------------ */

static void futex_wait(int *word, int value, const struct timespec *timeout)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, timeout, NULL, 0);
}

static void futex_wake_all(int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void bump(int *word)
{
	__atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(word);
}

/* Sleeps in the kernel (one context switch), never spins: the process-wide
 * context switch count must not include the barrier. */
static void wait_for_flag(int *word)
{
	while (!__atomic_load_n(word, __ATOMIC_ACQUIRE))
		futex_wait(word, 0, NULL);
}

void kit_control_go(struct kit_control *ctl)
{
	__atomic_store_n(&ctl->go, 1, __ATOMIC_RELEASE);
	futex_wake_all(&ctl->go);
}

void kit_control_release(struct kit_control *ctl)
{
	__atomic_store_n(&ctl->release, 1, __ATOMIC_RELEASE);
	futex_wake_all(&ctl->release);
}

int kit_control_wait(int *word, int value, int timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	int cur;

	while ((cur = __atomic_load_n(word, __ATOMIC_ACQUIRE)) < value) {
		uint64_t now = mono_ns();
		struct timespec ts;

		if (now >= deadline)
			break;
		ts.tv_sec = (deadline - now) / 1000000000ull;
		ts.tv_nsec = (deadline - now) % 1000000000ull;
		futex_wait(word, cur, &ts);
	}
	return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

/* ---- completion accounting ----------------------------------------------- */

/* k I/Os of one direction that share their timestamps, into the latency
 * statistics. A synchronous I/O (a sync engine's, a trim, one an async
 * engine completed inline) has no submission latency: its lat is its clat
 * (for a sync engine finish_sync_stats() copies the histogram). */
static HOT void add_latencies(struct driver *d, int ddir, int synchronous, uint64_t t_start,
				 uint64_t t_issue, uint64_t t_done, uint64_t k)
{
	struct kit_ddir_stats *ds = &d->t.s->ddir[ddir];
	uint64_t slat = synchronous ? 0 : t_issue - t_start;
	uint64_t lat = t_done - t_start, clat = lat - slat;

	if (!synchronous)
		lat_add_n(&ds->slat, slat, k);
	lat_add_n(&ds->clat, clat, k);
	if (!d->e->sync)
		lat_add_n(&ds->lat, lat, k);
}

static HOT int is_synchronous(const struct driver *d, const struct kit_io *io)
{
	return d->e->sync || io->ddir == KIT_DDIR_TRIM || io->inline_done;
}

/* The latencies of the I/Os account_reaped() gathered: one update for the
 * group, which shares one set of timestamps. */
static void flush_group(struct driver *d)
{
	struct lat_group *g = &d->group;

	if (!g->k)
		return;
	add_latencies(d, g->ddir, g->synchronous, g->t_start, g->t_issue, g->t_done, g->k);
	g->k = 0;
}

static void __attribute__((noinline, cold)) io_result_fail(struct driver *d, struct kit_io *io)
{
	static const char *const names[KIT_DDIR_NR] = { "read", "write", "trim" };
	char msg[200];

	if (io->result < 0) {
		snprintf(msg, sizeof(msg), "%s failed: %s", names[io->ddir], strerror((int)-io->result));
		io_fail(d, io, KIT_ERR_IO, (int)io->result, msg);
	} else {
		snprintf(msg, sizeof(msg), "short %s: %lld of %u bytes", names[io->ddir],
			 (long long)io->result, io->len);
		io_fail(d, io, KIT_ERR_SHORT, -EIO, msg);
	}
}

/* Counts one completed I/O, all but its latency statistics; returns 1 when
 * those are still to be added (not for a failed I/O, nor with gtod_reduce). */
static inline int count_io(struct driver *d, struct kit_io *io, uint64_t t_done)
{
	const struct kit_params *p = d->t.p;
	struct kit_stats *s = d->t.s;
	struct kit_ddir_stats *ds = &s->ddir[io->ddir];

	if (__builtin_expect((uint64_t)io->result != io->len, 0)) {
		io_result_fail(d, io);
		return 0;
	}
	if (io->ddir == KIT_DDIR_READ && p->verify && (d->verifying || !p->mixed)) {
		struct kit_verify_report r = {0};

		if (kit_verify_buffer(io->buf, io->len, io->offset, &r)) {
			struct kit_io at = *io;

			at.offset = r.bad_offset;
			io_fail(d, &at, KIT_ERR_VERIFY, -EILSEQ, r.msg);
			return 0;
		}
		s->verified_bytes += io->len;
	}
	/* windows that ended close before this I/O joins the totals (gtod_reduce:
	 * by the loop's coarse clock) */
	if (p->gtod_reduce)
		t_done = d->now;
	if (__builtin_expect(t_done >= d->window_end_ns, 0)) {
		flush_group(d);
		series_advance(d, t_done);
	}
	ds->ios++;
	ds->bytes += io->len;
	d->done_ios[io->ddir]++;
	d->done_bytes[io->ddir] += io->len;
	d->completed++;
	s->progress_ios++;
	s->progress_bytes += io->len;
	if (p->gtod_reduce)
		return 0;
	if (p->log_ios) {
		uint64_t slat = is_synchronous(d, io) ? 0 : io->t_issue - io->t_start;
		uint64_t lat = t_done - io->t_start;

		record_io(s, io, t_done, slat, lat - slat, lat);
	}
	return 1;
}

/* An I/O that completed on its own: a sync engine's, a trim, an inline
 * completion. */
static HOT void account_one(struct driver *d, struct kit_io *io, uint64_t t_done)
{
	if (count_io(d, io, t_done))
		add_latencies(d, io->ddir, is_synchronous(d, io), io->t_start, io->t_issue, t_done, 1);
}

/* One of the I/Os a reap returned. Its latencies join the open group when
 * it has the group's timestamps and direction (reap() flushes the group at
 * its end), so a burst reaped together costs one histogram update, not one
 * per I/O. */
static inline void account_reaped(struct driver *d, struct kit_io *io, uint64_t t_done)
{
	struct lat_group *g = &d->group;
	int synchronous;

	if (!count_io(d, io, t_done))
		return;
	synchronous = is_synchronous(d, io);
	if (g->k && g->ddir == io->ddir && g->t_start == io->t_start && g->t_issue == io->t_issue &&
	    g->t_done == t_done && g->synchronous == synchronous) {
		g->k++;
		return;
	}
	flush_group(d);
	g->k = 1;
	g->ddir = io->ddir;
	g->t_start = io->t_start;
	g->t_issue = io->t_issue;
	g->t_done = t_done;
	g->synchronous = synchronous;
}

/* What a synchronous engine's loop leaves out per I/O, added once at the
 * end: lat equals clat, and (as in fio) every I/O is one submit and one reap
 * at depth 1. */
static void finish_sync_stats(struct kit_stats *s)
{
	int d;

	for (d = 0; d < KIT_DDIR_NR; d++) {
		uint64_t n = s->ddir[d].ios;

		s->ddir[d].lat = s->ddir[d].clat;
		depth_add(s->depth_level, 1, n);
		depth_add(s->depth_submit, 1, n);
		depth_add(s->depth_complete, 1, n);
	}
}

/* An I/O an asynchronous engine finished without a submit and a reap (a
 * trim, an inline completion): one of each at depth 1, as a sync engine's. */
static HOT void count_inline(struct driver *d)
{
	if (d->e->sync)
		return;                 /* finish_sync_stats() counts those */
	depth_add(d->t.s->depth_submit, 1, 1);
	depth_add(d->t.s->depth_level, 1, 1);
	depth_add(d->t.s->depth_complete, 1, 1);
}

static HOT uint64_t clock_if_timed(struct driver *d)
{
	if (!d->t.p->gtod_reduce)
		d->now = now_ns();
	return d->now;
}

static int commit_pending(struct driver *d)
{
	struct kit_stats *s = d->t.s;
	uint64_t t;
	unsigned i, n = d->npending;
	int r;

	if (!n)
		return 0;
	r = d->e->commit(&d->t);
	if (r < 0)
		return kit_fail(&d->t, r, "%s: submitting %u I/Os", d->e->name, n);
	t = clock_if_timed(d);
	for (i = 0; i < n; i++)
		d->pending[i]->t_issue = t;
	d->inflight += n;
	d->npending = 0;
	depth_add(s->depth_submit, n, 1);
	depth_add(s->depth_level, d->inflight, n);
	return 0;
}

static int reap(struct driver *d, unsigned min)
{
	const struct kit_params *p = d->t.p;
	unsigned max = p->iodepth_batch_complete_max;
	uint64_t t;
	int i, n;

	if (max < min)
		max = min;
	if (max > d->inflight)
		max = d->inflight;
	n = d->e->reap(&d->t, min, max, d->done);
	if (n < 0)
		return kit_fail(&d->t, n, "%s: waiting for completions", d->e->name);
	if (!n)
		return 0;
	t = clock_if_timed(d);
	depth_add(d->t.s->depth_complete, (unsigned)n, 1);
	for (i = 0; i < n; i++) {
		account_reaped(d, d->done[i], t);
		d->free_ios[d->nfree++] = d->done[i];
	}
	flush_group(d);
	d->inflight -= (unsigned)n;
	return 0;
}

/* ---- limits, ramp and fsync ---------------------------------------------- */

static void rusage_thread(struct rusage *ru)
{
	getrusage(RUSAGE_THREAD, ru);
}

static RARE void start_measuring(struct driver *d)
{
	/* like fio, I/O issued while ramping still counts toward size and
	 * number_ios; only the statistics start afresh */
	stats_reset(d->t.s);
	rusage_thread(&d->ru0);
	d->t.s->start_ns = d->now = now_ns();
	if (d->t.p->runtime_ns)
		d->deadline = d->t.s->start_ns + d->t.p->runtime_ns;
	series_start(d, d->now);
	d->t.s->records.n = 0;
}

static int check_min_rate(struct driver *d);

static int must_stop_issuing(struct driver *d)
{
	const struct kit_params *p = d->t.p;

	if (d->stop_issuing)
		return 1;
	if (__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED)) {
		d->t.s->interrupted = 1;
		return d->stop_issuing = 1;
	}
	if (__atomic_load_n(&p->ctl->ended, __ATOMIC_RELAXED))
		return d->stop_issuing = 1;     /* exitall: a normal end, only earlier */
	if (p->gtod_reduce && (++d->loop_turns % CLOCK_CHECK_EVERY) == 0)
		d->now = now_ns();
	if (d->rate_check_at && d->now >= d->rate_check_at && !d->verifying && check_min_rate(d))
		return d->stop_issuing = 1;
	if (d->verifying)
		return d->stop_issuing = d->deadline && d->now >= d->deadline;
	/* like fio, size and number_ios count the ramp's I/O too: a job can end
	 * inside its ramp (then its figures are the ramp's, and say so) */
	if ((p->number_ios && d->issued_ios >= p->number_ios) ||
	    (p->io_size && d->issued_bytes >= p->io_size))
		return d->stop_issuing = 1;
	if (d->ramp_end) {
		if (d->now < d->ramp_end)
			return 0;
		d->ramp_end = 0;
		start_measuring(d);
	}
	if (d->deadline && d->now >= d->deadline)
		d->stop_issuing = 1;
	return d->stop_issuing;
}

/* Sleeps (or spins) until `until`, in slices, so that Ctrl-C, exitall and
 * the runtime end it early; returns 0 if it slept the whole time. */
static RARE int pause_until(struct driver *d, uint64_t spin_until, uint64_t until)
{
	const struct kit_params *p = d->t.p;

	if (d->deadline && until > d->deadline)
		until = d->deadline;
	while ((d->now = now_ns()) < spin_until && d->now < until)
		if (__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&p->ctl->ended, __ATOMIC_RELAXED))
			return 1;
	while ((d->now = now_ns()) < until) {
		uint64_t left = until - d->now;
		struct timespec ts;

		if (__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&p->ctl->ended, __ATOMIC_RELAXED))
			return 1;
		if (left > 50000000ull)
			left = 50000000ull;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* fio's __check_min_rate: quiet for the first 2 s, then a baseline, then
 * every rate_cycle the rate since the last check must reach the floor. */
static RARE int check_min_rate(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	uint64_t spent = d->now - d->rate_base_ns;
	int dd;

	d->rate_check_at = d->now + p->rate_cycle_ns;
	if (d->rate_baseline) {
		for (dd = 0; dd < KIT_DDIR_NR; dd++) {
			uint64_t bytes = d->done_bytes[dd] - d->rate_base_bytes[dd];
			uint64_t ios = d->done_ios[dd] - d->rate_base_ios[dd];
			uint64_t bps = spent ? (uint64_t)((unsigned __int128)bytes * 1000000000ull / spent) : 0;
			uint64_t iops = spent ? (uint64_t)((unsigned __int128)ios * 1000000000ull / spent) : 0;
			struct kit_io at = { .file = -1, .offset = 0 };
			char msg[160];

			if (!p->bs[dd].min)
				continue;       /* not a direction this job issues (no block size) */
			if (p->rate_min_bps[dd] && bps < p->rate_min_bps[dd])
				snprintf(msg, sizeof(msg), "rate_min=%lluB/s not met, got %lluB/s",
					 (unsigned long long)p->rate_min_bps[dd], (unsigned long long)bps);
			else if (p->rate_min_iops[dd] && iops < p->rate_min_iops[dd])
				snprintf(msg, sizeof(msg), "rate_iops_min=%llu not met, got %llu IOPS",
					 (unsigned long long)p->rate_min_iops[dd], (unsigned long long)iops);
			else
				continue;
			io_fail(d, &at, KIT_ERR_IO, -EIO, msg);
			return 1;
		}
	}
	d->rate_baseline = 1;
	d->rate_base_ns = d->now;
	memcpy(d->rate_base_bytes, d->done_bytes, sizeof(d->done_bytes));
	memcpy(d->rate_base_ios, d->done_ios, sizeof(d->done_ios));
	return 0;
}

static int drain(struct driver *d)
{
	int r = commit_pending(d);

	while (!r && d->inflight)
		r = reap(d, d->inflight);
	return r;
}

/* An fsync (or fdatasync) of one file once what is in flight is back;
 * counted: fio's fsync=N and fdatasync=N (end_fsync's is not). */
static RARE int do_fsync(struct driver *d, int file, int datasync, int counted)
{
	uint64_t t0;
	int r;

	if ((r = drain(d)))
		return r;
	t0 = now_ns();
	if ((datasync ? fdatasync(d->t.p->fds[file]) : fsync(d->t.p->fds[file])) < 0) {
		struct kit_io at = { .file = file, .offset = 0 };
		char msg[120];

		snprintf(msg, sizeof(msg), "%s failed: %s", datasync ? "fdatasync" : "fsync", strerror(errno));
		io_fail(d, &at, KIT_ERR_IO, -errno, msg);
		return 0;
	}
	d->now = now_ns();
	if (counted) {
		d->t.s->syncs++;
		lat_add(&d->t.s->sync_lat, d->now - t0);
	}
	return 0;
}

/* fio's thinktime: after every thinktime_blocks completions, the queue is
 * drained, then the thread spins thinktime_spin and sleeps the rest. */
static RARE int think(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	uint64_t t0;
	int r;

	if (d->completed < d->last_think + p->thinktime_blocks || d->verifying)
		return 0;
	d->last_think = d->completed;
	if ((r = drain(d)))
		return r;
	t0 = now_ns();
	pause_until(d, t0 + p->thinktime_spin_ns, t0 + p->thinktime_ns);
	return 0;
}

static HOT int maybe_think(struct driver *d)
{
	return __builtin_expect(!d->t.p->thinktime_ns, 1) ? 0 : think(d);
}

/* A trim, done synchronously on every engine (fio's libaio does the same):
 * a punched hole in a file, a discard on a block device. */
static RARE void do_trim(struct driver *d, struct kit_io *io)
{
	int fd = d->t.p->fds[io->file];
	int r;

	if (fd < 0) {                   /* the null engine: nothing to discard */
		io->result = io->len;
		return;
	}
	if (d->files[io->file].is_block) {
		uint64_t range[2] = { io->offset, io->len };

		r = ioctl(fd, BLKDISCARD, range);
	} else {
		r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)io->offset, io->len);
	}
	if (r < 0 && (errno == EOPNOTSUPP || errno == ENOTTY)) {
		char msg[200];

		snprintf(msg, sizeof(msg), "trim: %s (%s)", d->files[io->file].is_block ?
			 "this device does not discard" : "this filesystem cannot punch holes", strerror(errno));
		io_fail(d, io, KIT_ERR_IO, -errno, msg);
		io->result = 0;
		return;
	}
	io->result = r < 0 ? -errno : (int64_t)io->len;
}

/* fio's rate and rate_process: the I/O waits for its time, with the queue
 * drained first (as fio's inline submission does). Returns 1 when the wait
 * was cut short (the job is stopping). */
static RARE int pace_rate(struct driver *d, struct kit_io *io)
{
	const struct kit_params *p = d->t.p;
	uint64_t bps = p->rate_bps[io->ddir], due;

	if (d->verifying)
		return 0;
	due = rate_due(d, io->ddir);
	if (p->rate_poisson) {
		double gap_ns = 1e9 * (double)p->min_bs / (double)bps;

		d->rate_next[io->ddir] += (uint64_t)(gap_ns * -log(1.0 - rand_unit(d)));
	}
	d->rate_bytes[io->ddir] += io->len;
	if ((d->now = now_ns()) >= due)
		return 0;
	if (drain(d) || d->t.s->error)
		return 1;
	return pause_until(d, 0, due) || (d->deadline && d->now >= d->deadline);
}

static HOT int pace(struct driver *d, struct kit_io *io)
{
	return __builtin_expect(!d->t.p->rate_bps[io->ddir], 1) ? 0 : pace_rate(d, io);
}

/* ---- the loop ------------------------------------------------------------ */

static int issue_one(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	struct kit_io *io;
	int r;

	/* fio's fsync=N: after every N writes, the next I/O waits for an fsync
	 * of the file it goes to (none after the job's last write) */
	if (p->fsync_every && d->writes_since_fsync >= p->fsync_every) {
		d->writes_since_fsync = 0;
		if ((r = do_fsync(d, d->next_file, 0, 1)) || d->t.s->error)
			return r;
	}
	if (p->fdatasync_every && d->writes_since_fdatasync >= p->fdatasync_every) {
		d->writes_since_fdatasync = 0;
		if ((r = do_fsync(d, d->next_file, 1, 1)) || d->t.s->error)
			return r;
	}
	if (d->verifying) {
		int file;
		uint64_t block;

		if (!next_verify_block(d, &file, &block)) {
			d->stop_issuing = 1;
			return 0;
		}
		io = d->free_ios[--d->nfree];
		prepare_verify_io(d, io, file, block);
	} else {
		io = d->free_ios[--d->nfree];
		if (!prepare_io(d, io)) {       /* every file had its passes */
			d->free_ios[d->nfree++] = io;
			d->stop_issuing = 1;
			return 0;
		}
		if (pace(d, io)) {
			d->free_ios[d->nfree++] = io;
			d->stop_issuing = 1;
			return 0;
		}
	}
	/* the I/Os of one burst share its start, one clock read per burst (at
	 * depth 1 one per I/O): each I/O's latency then includes preparing the
	 * ones before it in the burst, tens of ns each. A submit call inside
	 * the burst (iodepth_batch_submit) reads the clock again. */
	if (!d->burst_timed || io->ddir == KIT_DDIR_TRIM) {
		clock_if_timed(d);
		d->burst_timed = 1;
	}
	io->t_start = d->now;
	d->issued_ios++;
	d->issued_bytes += io->len;
	if (io->ddir == KIT_DDIR_TRIM) {
		do_trim(d, io);
		io->t_issue = io->t_start;
		account_one(d, io, clock_if_timed(d));
		count_inline(d);
		d->free_ios[d->nfree++] = io;
		return maybe_think(d);
	}
	r = d->e->queue(&d->t, io);
	if (r < 0) {
		d->free_ios[d->nfree++] = io;
		return kit_fail(&d->t, r, "%s: queueing an I/O", d->e->name);
	}
	if (r == KIT_COMPLETED) {
		io->inline_done = 1;
		account_one(d, io, clock_if_timed(d));
		io->inline_done = 0;
		count_inline(d);
		d->free_ios[d->nfree++] = io;
		r = 0;
	} else if (d->e->commit && r != KIT_STARTED) {
		d->pending[d->npending++] = io;
		if (d->npending >= p->iodepth_batch_submit ||
		    (d->e->max_batch && d->npending >= d->e->max_batch))
			r = commit_pending(d);
	} else {
		/* the engine started it inside queue() (no commit(), or
		 * KIT_STARTED): issued now */
		io->t_issue = clock_if_timed(d);
		d->inflight++;
		depth_add(d->t.s->depth_submit, 1, 1);
		depth_add(d->t.s->depth_level, d->inflight, 1);
		r = 0;
	}
	if (io->ddir == KIT_DDIR_WRITE) {
		d->writes_since_fsync++;
		d->writes_since_fdatasync++;
	}
	if (r >= 0)
		r = maybe_think(d);
	return r < 0 ? r : 0;
}

static int run_loop(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	int r = 0;

	for (;;) {
		d->burst_timed = 0;
		while (d->inflight + d->npending < d->depth && !must_stop_issuing(d))
			if ((r = issue_one(d)) || d->t.s->error)
				break;
		if (r || d->t.s->error)
			break;
		if (d->npending && (r = commit_pending(d)))
			break;
		if (!d->inflight) {
			if (d->stop_issuing)
				break;
			continue;
		}
		if (d->stop_issuing) {
			r = reap(d, 1);
		} else {
			unsigned min = p->iodepth_batch_complete_min;

			/* the queue is full: at least one must come back */
			if (min < 1)
				min = 1;
			if (min > d->inflight)
				min = d->inflight;
			r = reap(d, min);
		}
		if (!r && !d->t.s->error)
			r = maybe_think(d);
		if (r || d->t.s->error)
			break;
	}
	/* in-flight I/O always comes back before teardown, even on error */
	{
		int r2 = drain(d);

		if (!r)
			r = r2;
	}
	return r;
}

/* fio's verify phase: after the writes, the files are synced and (buffered)
 * dropped from the page cache, and every block written is read back through
 * the same engine at the same depth, checked, and counted as a read. */
static int verify_phase(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	uint64_t t0 = now_ns();
	int f, r;

	for (f = 0; f < p->nfiles; f++) {
		if (fsync(p->fds[f]) < 0 && errno != EINVAL) {
			struct kit_io at = { .file = f, .offset = 0 };
			char msg[120];

			snprintf(msg, sizeof(msg), "fsync before verify failed: %s", strerror(errno));
			io_fail(d, &at, KIT_ERR_IO, -errno, msg);
			return 0;
		}
		if (p->buffered)
			posix_fadvise(p->fds[f], 0, 0, POSIX_FADV_DONTNEED);
	}
	d->verifying = 1;
	d->stop_issuing = 0;
	d->now = now_ns();
	r = run_loop(d);
	d->t.s->verify_ns = now_ns() - t0;
	return r;
}

/* ---- setup and teardown -------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* In a process of several threads the kernel takes and drops a reference
 * to the file on every system call (fdget), which a single-threaded program
 * is spared: a job thread gets a descriptor table of its own, holding only
 * its files, and pays what a program of its own would. The threads it
 * starts share that table. An engine whose helper threads serve the whole
 * process (glibc's AIO threads outlive the run) keeps the shared table. */
static void private_files(struct driver *d)
{
	const struct kit_params *p = d->t.p;
	int *fds, n = 0, f;
	unsigned next = 3;

	if (d->e->shared_files || !(fds = malloc(sizeof(int) * (size_t)(p->nfiles + 1))))
		return;
	for (f = 0; f < p->nfiles; f++)
		if (p->fds[f] >= 3)
			fds[n++] = p->fds[f];
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	if (unshare(CLONE_FILES) == 0) {
		d->private_files = 1;
		/* the copy keeps the standard streams and the job's files */
		for (f = 0; f < n; f++) {
			if ((unsigned)fds[f] > next)
				syscall(SYS_close_range, next, (unsigned)fds[f] - 1, 0);
			next = (unsigned)fds[f] + 1;
		}
		syscall(SYS_close_range, next, ~0U, 0);
	}
	free(fds);
}

/* The job's files leave the private table with the run, not with the
 * thread: kit's locks on them end when kit closes its own descriptors. */
static void release_private_files(struct driver *d)
{
	if (d->private_files)
		syscall(SYS_close_range, 3, ~0U, 0);
}

/* fio's cpus_allowed, nice and prio: on the job thread alone (each of
 * these system calls takes the calling thread on Linux) */
static int thread_attributes(struct kit_thread *t)
{
	const struct kit_params *p = t->p;
	cpu_set_t set;
	int i, any = 0;

	CPU_ZERO(&set);
	for (i = 0; i < KIT_CPU_WORDS * 64 && i < CPU_SETSIZE; i++)
		if (p->cpumask[i / 64] >> (i % 64) & 1) {
			CPU_SET(i, &set);
			any = 1;
		}
	if (any && sched_setaffinity(0, sizeof(set), &set))
		return kit_fail(t, -errno, "cpus_allowed: sched_setaffinity: %s", strerror(errno));
	errno = 0;
	if (p->nice && nice(p->nice) == -1 && errno)
		return kit_fail(t, -errno, "nice=%d: %s", p->nice, strerror(errno));
	if (p->ioprio >= 0 && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, p->ioprio))
		return kit_fail(t, -errno, "prio/prioclass: ioprio_set: %s", strerror(errno));
	return 0;
}

static int driver_setup(struct driver *d, const struct kit_params *p,
			struct kit_stats *s)
{
	uint64_t seed = p->seed ^ 0x6B69745F6B6974ull;
	uint32_t max_bs = 0;
	unsigned i;
	int f, dd;

	d->t.p = p;
	d->t.s = s;
	d->e = kit_engine_get(p->engine);
	if (!d->e)
		return kit_fail(&d->t, -EINVAL, "no engine with index %d", p->engine);
	private_files(d);
	if (thread_attributes(&d->t))
		return s->error;
	d->depth = d->e->sync ? 1 : p->iodepth;
	if (d->depth < 1 || d->depth > KIT_DEPTH_MAX)
		return kit_fail(&d->t, -EINVAL, "iodepth %u out of range", d->depth);
	for (i = 0; i < 4; i++)
		d->rng[i] = splitmix64(&seed);
	d->buf_rng = splitmix64(&seed) ^ p->verify_seed;

	d->files = calloc(p->nfiles, sizeof(*d->files));
	d->t.ios = calloc(d->depth, sizeof(*d->t.ios));
	d->free_ios = calloc(d->depth, sizeof(*d->free_ios));
	d->done = calloc(d->depth, sizeof(*d->done));
	d->pending = calloc(d->depth, sizeof(*d->pending));
	for (dd = 0; dd < KIT_DDIR_NR; dd++) {
		if (p->bs[dd].max > max_bs)
			max_bs = p->bs[dd].max;
		if (p->bs[dd].max > p->min_bs)
			d->variable_bs = 1;
	}
	if (!p->min_bs || !max_bs)
		return kit_fail(&d->t, -EINVAL, "no block size");
	d->t.buf_stride = (max_bs + BUF_ALIGN - 1) / BUF_ALIGN * BUF_ALIGN;
	if (!d->files || !d->t.ios || !d->free_ios || !d->done || !d->pending ||
	    posix_memalign((void **)&d->t.bufs, BUF_ALIGN, d->t.buf_stride * d->depth))
		return kit_fail(&d->t, -ENOMEM, "allocating %u buffers of %u bytes",
				d->depth, max_bs);
	for (f = 0; f < p->nfiles; f++) {
		struct file_state *fs = &d->files[f];
		struct stat st;

		fs->base = p->file_offsets ? p->file_offsets[f] : 0;
		fs->region = p->file_sizes[f];
		fs->nblocks = fs->region / p->min_bs;
		if (!fs->nblocks)
			return kit_fail(&d->t, -EINVAL, "file %d is smaller than bs", f);
		fs->is_block = p->fds[f] >= 0 && fstat(p->fds[f], &st) == 0 && S_ISBLK(st.st_mode);
		while (fs->bits < 64 && (1ull << fs->bits) < fs->nblocks)
			fs->bits++;
		fs->mask = fs->bits >= 64 ? ~0ull : (1ull << fs->bits) - 1;
		if (p->random && p->dist != KIT_DIST_RANDOM)
			dist_setup(d, fs);
		if (p->random && d->variable_bs && !p->norandommap && p->dist == KIT_DIST_RANDOM &&
		    !(fs->used = calloc((fs->nblocks + 63) / 64, sizeof(uint64_t))))
			return kit_fail(&d->t, -ENOMEM, "allocating the random map of file %d", f);
		if (p->verify && p->rwmixread < 100 &&
		    !(fs->written = calloc((fs->nblocks + 63) / 64, sizeof(uint64_t))))
			return kit_fail(&d->t, -ENOMEM, "allocating the verify map of file %d "
					"(%llu blocks)", f, (unsigned long long)fs->nblocks);
	}
	for (i = 0; i < d->depth; i++) {
		struct kit_io *io = &d->t.ios[i];

		io->index = (int)i;
		io->buf = d->t.bufs + (size_t)i * d->t.buf_stride;
		/* unverified writes carry a stamped pattern too, never zeroes
		 * (which some devices and filesystems would shortcut), unless
		 * the job asks for other content */
		if (p->verify || p->buffer_fill == KIT_FILL_RANDOM)
			kit_stamp_buffer(io->buf, d->t.buf_stride, 0, p->verify_seed + i);
		else
			fill_buffer(d, io->buf, d->t.buf_stride);
		d->free_ios[d->nfree++] = io;
	}
	return d->e->setup(&d->t);
}

static void driver_free(struct driver *d)
{
	int f;

	for (f = 0; d->files && f < d->t.p->nfiles; f++) {
		free(d->files[f].written);
		free(d->files[f].used);
	}
	free(d->files);
	free(d->t.ios);
	free(d->free_ios);
	free(d->done);
	free(d->pending);
	free(d->t.bufs);
}

int kit_job_run(const struct kit_params *p, struct kit_stats *s)
{
	struct driver d;
	struct rusage ru1;
	int r, set_up, i;

	pthread_once(&clk_once, clock_calibrate);
	memset(&d, 0, sizeof(d));
	memset(s, 0, sizeof(*s));
	s->clock_tsc = clk.use_tsc;
	stats_reset(s);
	s->tid = (int)syscall(SYS_gettid);
	s->error_file = -1;

	r = driver_setup(&d, p, s);
	set_up = (r == 0);
	bump(&p->ctl->ready);
	wait_for_flag(&p->ctl->go);

	if (set_up && p->startdelay_ns) {
		d.deadline = 0;
		pause_until(&d, 0, now_ns() + p->startdelay_ns);
	}
	if (set_up && !__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED) &&
	    !__atomic_load_n(&p->ctl->ended, __ATOMIC_RELAXED)) {
		int dd;

		d.now = d.epoch = s->epoch_ns = now_ns();
		for (dd = 0; dd < KIT_DDIR_NR; dd++)
			d.rate_next[dd] = d.epoch;
		for (dd = 0; dd < KIT_DDIR_NR; dd++)
			if (p->rate_min_bps[dd] || p->rate_min_iops[dd])
				d.rate_check_at = d.epoch + 2000000000ull;
		if (p->ramp_ns)
			d.ramp_end = d.now + p->ramp_ns;
		start_measuring(&d);
		r = run_loop(&d);
		s->ramp_unfinished = d.ramp_end != 0;
		if (!r && !s->error && p->end_fsync && p->rwmixread < 100 && !p->trim) {
			int f;

			/* once per file, timed in the write runtime, not counted */
			for (f = 0; f < p->nfiles && !s->error; f++)
				do_fsync(&d, f, 0, 0);
		}
		/* windows that ended while the job ran are whole ones even with no
		 * completion after their end (the thread, preempted across it, woke
		 * to find the runtime up): fio's helper thread samples them on the
		 * clock, not on a completion */
		flush_group(&d);
		series_advance(&d, now_ns());
		if ((p->exitall && !s->interrupted) || (p->exitall_on_error && s->error)) {
			__atomic_store_n(&p->ctl->ended, 1, __ATOMIC_RELEASE);
			futex_wake_all(&p->ctl->ended);
		}
		{
			uint64_t main_ns = now_ns() - s->start_ns;
			int dd;

			for (dd = 0; dd < KIT_DDIR_NR; dd++)
				s->ddir_runtime_ns[dd] = s->ddir[dd].ios ? main_ns : 0;
		}
		if (!r && !s->error && p->verify && p->rwmixread < 100 &&
		    !__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED)) {
			r = verify_phase(&d);
			s->ddir_runtime_ns[KIT_DDIR_READ] += s->verify_ns;
		}
		s->end_ns = now_ns();
		/* the windows still open: what Python reads as each series' last */
		for (i = 0; i < KIT_GRIDS; i++)
			series_fill_open(&d, i);
		if (d.e->sync)
			finish_sync_stats(s);
		rusage_thread(&ru1);
		s->utime_ns = tv_ns(&ru1.ru_utime) - tv_ns(&d.ru0.ru_utime);
		s->stime_ns = tv_ns(&ru1.ru_stime) - tv_ns(&d.ru0.ru_stime);
		s->nvcsw = ru1.ru_nvcsw - d.ru0.ru_nvcsw;
		s->nivcsw = ru1.ru_nivcsw - d.ru0.ru_nivcsw;
		s->minflt = ru1.ru_minflt - d.ru0.ru_minflt;
		s->majflt = ru1.ru_majflt - d.ru0.ru_majflt;
		if (__atomic_load_n(&p->ctl->stop, __ATOMIC_RELAXED))
			s->interrupted = 1;
	}
	bump(&p->ctl->finished);
	/* stay out of the way until Python has taken its process snapshot */
	wait_for_flag(&p->ctl->release);

	if (set_up)
		d.e->teardown(&d.t);
	driver_free(&d);
	release_private_files(&d);
	if (r < 0 && !s->error)
		kit_fail(&d.t, r, "run failed");
	return s->error;
}
