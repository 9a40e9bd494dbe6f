/*
 * kit.h - the interface between Python (cffi) and the C measuring loops.
 *
 * Everything between "cdef-begin" and "cdef-end" is also fed to cffi's cdef,
 * so it stays plain C: no includes, no macros other than integer #defines.
 * One struct kit_params and one struct kit_stats per job thread; one
 * struct kit_control shared by all job threads of a run and by Python.
 */
#ifndef KIT_H
#define KIT_H

#include <stdint.h>

/* cdef-begin */

/* Latency histogram, bucket-compatible with fio's io_u_plat (stat.h):
 * 64 sub-buckets per power of two, so a value is known within 1/128. */
#define KIT_PLAT_BITS 6
#define KIT_PLAT_VAL 64
#define KIT_PLAT_GROUP_NR 29
#define KIT_PLAT_NR 1856

/* In-flight depth histograms count depths 0..KIT_DEPTH_MAX exactly. */
#define KIT_DEPTH_MAX 4096
#define KIT_DEPTH_NR 4097

#define KIT_DDIR_READ 0
#define KIT_DDIR_WRITE 1
#define KIT_DDIR_TRIM 2
#define KIT_DDIR_NR 3

#define KIT_FILL_RANDOM 0
#define KIT_FILL_ZERO 1
#define KIT_FILL_COMPRESS 2

#define KIT_CPU_WORDS 16      /* cpus_allowed: 1024 CPUs, glibc's CPU_SETSIZE */
#define KIT_GRIDS 3           /* time-series grids: iops_*, bw_*, logs (distinct ones) */

#define KIT_VERIFY_NONE 0
#define KIT_VERIFY_CRC32C 1

/* Verification stamps every KIT_VERIFY_UNIT bytes of a file, whatever bs. */
#define KIT_VERIFY_UNIT 512

/* How random offsets are spread (fio's random_distribution). */
#define KIT_DIST_RANDOM 0
#define KIT_DIST_ZIPF 1
#define KIT_DIST_PARETO 2
#define KIT_DIST_NORMAL 3

/* bssplit entries per direction at most (fio's BSSPLIT_MAX). */
#define KIT_BSSPLIT_MAX 64

/* Error classes reported in kit_stats.error_kind. */
#define KIT_ERR_NONE 0
#define KIT_ERR_SETUP 1
#define KIT_ERR_IO 2
#define KIT_ERR_SHORT 3
#define KIT_ERR_VERIFY 4

struct kit_control {
	int go;           /* set by Python once every job thread is ready */
	int stop;         /* set by Python to end the run early (Ctrl-C) */
	int ready;        /* job threads done with setup (or failed it) */
	int finished;     /* job threads done with their measured interval */
	int release;      /* set by Python after its process-wide snapshot */
	int nthreads;
	int ended;        /* a job thread with exitall (or failed with
	                   * exitall_on_error) ended: the others stop issuing */
};

/* How one direction picks its block sizes: one size (min == max), any
 * multiple of min up to max (bsrange), or bssplit's table. */
struct kit_bs {
	uint32_t min;
	uint32_t max;
	uint32_t nsplit;                        /* 0: no table */
	uint32_t split_bs[KIT_BSSPLIT_MAX];
	uint32_t split_cum[KIT_BSSPLIT_MAX];    /* cumulative percent */
};

struct kit_params {
	int engine;                 /* index into the engine registry */
	int nfiles;
	const int *fds;             /* one open descriptor per file */
	const uint64_t *file_offsets; /* where each file's region starts */
	const uint64_t *file_sizes; /* bytes of each file's region */
	struct kit_bs bs[KIT_DDIR_NR];
	uint32_t min_bs;            /* offsets are multiples of it (fio's td_min_bs) */
	uint32_t iodepth;
	int random;                 /* 0: sequential, 1: random offsets */
	int norandommap;            /* 1: uniform offsets, blocks may repeat */
	int rwmixread;              /* percent of I/Os that are reads */
	int trim;                   /* 1: every I/O is a trim (punch hole or discard) */
	int mixed;                  /* the mode reads and writes (fio's td_rw): with verify, only
	                             * the verify phase's reads are checked (a read of the job's own
	                             * may meet a write to its block still in flight) */
	/* the job thread's own attributes (fio's cpus_allowed, nice, prio),
	 * set before the engine starts threads of its own, which inherit them */
	uint64_t cpumask[KIT_CPU_WORDS];    /* all 0: the affinity as it is */
	int nice;                   /* added to the thread's nice value, as nice(2) */
	int ioprio;                 /* ioprio_set's value; -1: as it is */
	/* what unverified writes carry (fio's zero_buffers, refill_buffers,
	 * scramble_buffers, buffer_compress_percentage) */
	int buffer_fill;            /* KIT_FILL_*: the buffers' content */
	uint32_t compress_percentage;   /* KIT_FILL_COMPRESS: zeros in each chunk, % */
	uint32_t compress_chunk;    /* its chunk: random first, then zeros */
	int refill_buffers;         /* 1: new content for every write */
	int scramble_buffers;       /* 1: each write's offset and time in every 512 bytes */
	int dist;                   /* KIT_DIST_*: how random offsets are spread */
	double dist_param;          /* zipf theta, pareto h, normal sigma */
	double dist_center;         /* 0..1, or -1: fio's default */
	uint64_t io_size;           /* stop after this many bytes; 0: no limit */
	uint32_t passes;            /* stop when every file had this many passes
	                             * (sequential, random map); 0: wrap around */
	uint64_t number_ios;        /* stop after this many I/Os; 0: no limit */
	uint64_t runtime_ns;        /* stop after this long; 0: no limit */
	uint64_t ramp_ns;           /* run this long before measuring */
	uint64_t seed;
	uint32_t fsync_every;       /* fsync after every N writes; 0: never */
	uint32_t fdatasync_every;   /* fdatasync after every N writes; 0: never */
	int end_fsync;              /* 1: fsync each file once after the last write */
	uint64_t startdelay_ns;     /* wait before the job starts (not in runtime) */
	/* pacing, per direction: a cap in bytes/s (linear: each I/O at
	 * issued bytes / rate since the start; poisson: exponential gaps), a
	 * floor checked every rate_cycle after 2 s; 0: none */
	uint64_t rate_bps[KIT_DDIR_NR];
	int rate_poisson;
	uint64_t rate_min_bps[KIT_DDIR_NR];
	uint64_t rate_min_iops[KIT_DDIR_NR];
	uint64_t rate_cycle_ns;
	uint64_t thinktime_ns;      /* after every thinktime_blocks completions: drain, */
	uint64_t thinktime_spin_ns; /* spin this long, sleep the rest */
	uint32_t thinktime_blocks;
	int exitall;                /* ending sets ctl->ended */
	int exitall_on_error;       /* failing sets ctl->ended */
	int verify;                 /* KIT_VERIFY_*: reads are checked, and
	                             * a job that writes reads back what it
	                             * wrote after its writes (fio's verify
	                             * phase, reported under read) */
	int buffered;               /* 1: not O_DIRECT (the verify phase drops
	                             * the page cache first, as fio does) */
	uint64_t verify_seed;       /* stamped into the blocks this job writes */
	int gtod_reduce;            /* 1: no per-I/O timestamps */
	uint32_t iodepth_batch_submit;
	uint32_t iodepth_batch_complete_min;
	uint32_t iodepth_batch_complete_max;
	/* engines' own options: each set from the `param` of an option its
	 * kit/engines/<name>.py declares */
	int fixedbufs;
	int registerfiles;
	int sqthread_poll;
	int sqthread_poll_cpu;      /* -1: let the kernel place it */
	int hipri;
	uint32_t force_async;       /* every Nth SQE gets IOSQE_ASYNC (io-wq); 0: never */
	uint32_t threads;           /* threadpool's and asio's pool workers; 0: iodepth */
	int asio_backend;           /* asio: 0 io_uring, 1 thread_pool */
	/* time series: windows of what completed on up to KIT_GRIDS grids
	 * (fio's iopsavgtime and bwavgtime sampling for the iops_* and bw_*
	 * statistics, log_avg_msec for logs: kit/job.py's windows_ms says
	 * which grid is which), and one record per I/O for unaveraged logs */
	uint64_t window_ns[KIT_GRIDS];      /* 0: no such grid */
	int log_ios;                /* 1: keep a record of every I/O */
	struct kit_control *ctl;
};

/* One window of a time series: what completed in it, per direction. */
struct kit_window {
	uint64_t end_ns;            /* when it was closed (CLOCK_MONOTONIC) */
	uint64_t span_ns;
	uint64_t bytes[KIT_DDIR_NR];
	uint64_t ios[KIT_DDIR_NR];
	double slat_sum[KIT_DDIR_NR];
	double clat_sum[KIT_DDIR_NR];
	double lat_sum[KIT_DDIR_NR];
};

struct kit_series {
	struct kit_window *w;       /* allocated by C: kit_stats_free() */
	uint64_t n;
	uint64_t cap;
	uint64_t interval_ns;
	struct kit_window open;     /* being filled, since open_ns */
	uint64_t open_ns;
	uint64_t until_ns;          /* the runtime's end: a window reaching it is
	                             * the last, partial one (0: no runtime) */
};

/* One I/O, for per-I/O logs (fio's write_lat_log without log_avg_msec). */
struct kit_io_record {
	uint64_t end_ns;
	uint64_t slat;
	uint64_t clat;
	uint64_t lat;
	uint64_t offset;
	uint32_t len;
	uint32_t ddir;
};

struct kit_io_records {
	struct kit_io_record *r;    /* allocated by C: kit_stats_free() */
	uint64_t n;
	uint64_t cap;
};

struct kit_lat {
	uint64_t n;
	uint64_t min;
	uint64_t max;
	uint64_t sum;                /* ns: exact; sumsq needs a double's range */
	double sumsq;
	uint64_t hist[KIT_PLAT_NR];
};

struct kit_ddir_stats {
	uint64_t ios;
	uint64_t bytes;
	struct kit_lat slat;
	struct kit_lat clat;
	struct kit_lat lat;
};

struct kit_stats {
	struct kit_ddir_stats ddir[KIT_DDIR_NR];
	/* how long each direction ran, as fio's per-direction runtime: the
	 * measured interval, and for reads the verify phase on top */
	uint64_t ddir_runtime_ns[KIT_DDIR_NR];
	uint64_t syncs;
	struct kit_lat sync_lat;
	/* how many I/Os were in flight right after each submission, how many
	 * were submitted per submit call, how many were reaped per reap call */
	uint64_t depth_level[KIT_DEPTH_NR];
	uint64_t depth_submit[KIT_DEPTH_NR];
	uint64_t depth_complete[KIT_DEPTH_NR];
	uint64_t start_ns;          /* CLOCK_MONOTONIC, measured interval */
	uint64_t end_ns;
	int tid;
	/* RUSAGE_THREAD deltas over the measured interval */
	uint64_t utime_ns;
	uint64_t stime_ns;
	uint64_t nvcsw;
	uint64_t nivcsw;
	uint64_t minflt;
	uint64_t majflt;
	uint64_t verified_bytes;
	uint64_t progress_ios;      /* completed, ramp included; read live */
	uint64_t progress_bytes;
	int interrupted;
	int ramp_unfinished;        /* the job ended before ramp_time did: the
	                             * figures include the ramp (as fio's do) */
	uint64_t verify_ns;         /* the verify phase, inside start..end */
	uint64_t epoch_ns;          /* when the job started (before any ramp): log times count from it */
	struct kit_series series[KIT_GRIDS];        /* windows on params.window_ns */
	struct kit_io_records records;
	int series_truncated;       /* memory ran out: the series end early */
	uint32_t ring_flags;        /* io_uring: setup flags the kernel accepted */
	uint64_t threads_started;   /* threads the engine started (pool workers at
	                             * setup, stdasync's one per I/O) */
	int clock_tsc;              /* 1: timestamps from the calibrated TSC */
	/* first error; kit_strerror-style context in error_msg */
	int error;                  /* negative errno, or -1 for verify/short */
	int error_kind;             /* KIT_ERR_* */
	int error_file;             /* index into fds, -1 if none */
	uint64_t error_offset;
	char error_msg[200];
};

struct kit_verify_report {
	uint64_t checked_bytes;
	int bad;                    /* 1 if a unit failed */
	uint64_t bad_offset;        /* file offset of the first wrong byte */
	char msg[200];
};

int kit_engine_count(void);
const char *kit_engine_name(int index);
const char *kit_engine_framework(int index);    /* NULL for plain system calls */
int kit_engine_is_sync(int index);
const char *kit_source_hash(void);
const char *kit_liburing_version(void);

/* Runs one job thread to completion; returns 0 or a negative errno. */
int kit_job_run(const struct kit_params *p, struct kit_stats *s);
/* Frees what kit_job_run allocated inside s (its time series). */
void kit_stats_free(struct kit_stats *s);

/* Python's side of the start/finish barriers (block without the GIL). */
void kit_control_go(struct kit_control *ctl);
void kit_control_release(struct kit_control *ctl);
int kit_control_wait(int *word, int value, int timeout_ms);

/* Verification pattern: fill a file range, check a file range or buffer. */
int kit_prefill(int fd, uint64_t offset, uint64_t len, uint64_t seed,
		uint64_t *progress);
int kit_verify_range(int fd, uint64_t offset, uint64_t len,
		     struct kit_verify_report *r);
int kit_verify_buffer(const void *buf, uint64_t len, uint64_t offset,
		      struct kit_verify_report *r);
void kit_stamp_buffer(void *buf, uint64_t len, uint64_t offset, uint64_t seed);
uint32_t kit_crc32c(uint32_t crc, const void *buf, uint64_t len);

/* Birth time of the file at (dirfd, path) with statx flags (with path "" and
 * KIT_AT_EMPTY_PATH: of the open descriptor dirfd itself); -EOPNOTSUPP where
 * the filesystem keeps none. */
#define KIT_AT_FDCWD -100
#define KIT_AT_SYMLINK_NOFOLLOW 256
#define KIT_AT_EMPTY_PATH 4096
int kit_file_birth_ns(int dirfd, const char *path, int flags, int64_t *birth_ns);

/* fio's log lines "time, value, ddir, bs[, offset], 0\n" for n I/Os or
 * windows (offsets NULL: no offset column) into buf; returns the bytes
 * written, or -1 when cap is under n * KIT_LOG_LINE_MAX. */
#define KIT_LOG_LINE_MAX 112
int64_t kit_format_log(const int64_t *times, const int64_t *values, const int64_t *ddirs,
		       const int64_t *sizes, const int64_t *offsets, uint64_t n, char *buf, uint64_t cap);

/* Histogram helpers shared with Python so both sides agree on buckets. */
unsigned kit_plat_val_to_idx(uint64_t val);
uint64_t kit_plat_idx_to_val(unsigned idx);

/* cdef-end */

#endif
