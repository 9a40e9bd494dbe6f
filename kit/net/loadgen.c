/*
 * loadgen.c - kit's network load generator (kit-net-loadgen; net-spec.md,
 * "Load generator"). N connections (TCP connections, or connect()ed UDP
 * sockets) spread over T threads, each thread one epoll loop over its own
 * nonblocking sockets.
 *
 * Closed loop (--rate 0): each connection keeps --iodepth requests in
 * flight. Open loop (--rate R): requests are due at fixed intervals per
 * connection (R/N each); a request's latency counts from when it was due,
 * not from when it could be sent (no coordinated omission), and one sent
 * LATE_NS or more after it was due counts as late. A connection has at most
 * --iodepth requests in flight in either loop.
 *
 * A request is --bs bytes: its sequence number (little-endian, the first 8
 * bytes, fewer when bs is smaller) then the connection's pattern; with
 * --verify 1 each echo is compared byte for byte. The clock is read once per
 * recv() call (for all the replies it brought and the requests sent in
 * reply), not once per message.
 *
 * Output: one JSON object on stdout at the end; errors as
 * {"error": "...", "code": 1|2} with exit 1|2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "json.h"
#include "../engines/plat.h"     /* kit's histogram bins, as storage fills them */

/* kit's latency histogram (kit/hist.py, kit/engines/driver.c): 64 sub-buckets per power of two */

#define LATE_NS 1000000ull          /* an open-loop request sent this late after its time is late */
#define MAX_EVENTS 256
#define UDP_BATCH 64                /* datagrams per sendmmsg/recvmmsg */
#define RX_CHUNK (256u << 10)       /* bytes per TCP recv() */
#define SINK_BATCHES 16             /* closed-loop sink: sends per connection per wake-up */
#define MAX_WINDOWS 1000000
#define HDR(bs) ((bs) < 8 ? (bs) : 8u)

/* ---- options --------------------------------------------------------------- */

static struct {
	int udp, sink, verify;
	struct sockaddr_in addr;
	unsigned conns, depth, bs, threads;
	double rate;
	uint64_t ramp_ns, runtime_ns, window_ns, timeout_ns;
} o = { .verify = 1, .conns = 1, .depth = 1, .runtime_ns = 1000000000ull, .window_ns = 100000000ull,
	.timeout_ns = 200000000ull };

/* ---- state ------------------------------------------------------------------ */

struct udp_slot {
	uint64_t seq;       /* of the request in this slot */
	uint64_t ts;        /* its send (or due) time: its latency counts from here */
	uint64_t sent_ns;   /* when the socket took it: its reply's timeout counts from here (an open
			     * loop's request sent late is not lost for being late) */
	int active;
};

struct conn {
	int fd, idx;
	uint64_t next_seq;          /* the next request's sequence number */
	unsigned inflight;          /* requests sent (or queued) and not answered */
	int want_out;               /* EPOLLOUT registered */
	uint64_t scheduled;         /* open loop: requests scheduled so far */
	/* TCP */
	uint64_t rx_seq;            /* the reply expected next */
	unsigned rx_off;            /* bytes of it received */
	uint64_t *ts;               /* send (or due) time of request seq, at seq % depth */
	char *tx;                   /* requests not yet taken by the socket */
	size_t tx_len, tx_off, tx_cap;
	uint64_t tx_total;          /* bytes the socket took (sink: requests done = tx_total / bs) */
	/* UDP */
	struct udp_slot *slots;
	unsigned *pend, npend;      /* slots waiting to be sent */
	char *tmpl;                 /* the pattern of this connection's requests */
};

struct worker {
	pthread_t thread;
	int id, epfd;
	struct conn *c;
	unsigned n;
	char *rx;                   /* receive scratch */
	char *txs;                  /* UDP send scratch: UDP_BATCH messages */
	/* figures of the measurement window */
	uint64_t requests, sent, lost, late;
	uint64_t lat_min, lat_max, lat_sum;
	double lat_sumsq;
	uint64_t hist[KIT_PLAT_NR];
	uint64_t *windows;
	struct rusage ru0, ru1;
	int ru_started;
	pid_t tid;
	uint64_t stop_ns;
};

static struct worker *workers;
static unsigned nwindows;
static uint64_t t0, mstart, mend;
static double interval_ns;      /* open loop, per connection */
static volatile int stop_flag;
static unsigned done_count;
static pthread_barrier_t start_line;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char err_msg[512];

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- errors ---------------------------------------------------------------- */

static _Noreturn void die(int code, const char *fmt, ...)
{
	char msg[512], esc[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_escape(esc, sizeof(esc), msg);
	printf("{\"error\": \"%s\", \"code\": %d}\n", esc, code);
	fflush(stdout);
	_exit(code);
}

/* A thread's failure: the first one is kept, every thread stops. */
static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (!err_msg[0]) {
		va_start(ap, fmt);
		vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
	stop_flag = 1;
}

/* ---- figures ----------------------------------------------------------------- */

static inline int measuring(uint64_t t)
{
	return t >= mstart && t < mend;
}

static inline void completed(struct worker *w, uint64_t sent_at, uint64_t now)
{
	uint64_t lat;

	if (!measuring(now))
		return;
	lat = now > sent_at ? now - sent_at : 0;
	w->requests++;
	w->lat_sum += lat;
	w->lat_sumsq += (double)lat * (double)lat;
	if (lat < w->lat_min)
		w->lat_min = lat;
	if (lat > w->lat_max)
		w->lat_max = lat;
	w->hist[plat_val_to_idx(lat)]++;
	if (nwindows) {
		uint64_t k = (now - mstart) / o.window_ns;

		w->windows[k < nwindows ? k : nwindows - 1]++;
	}
}

/* sink: a request is done when the socket took its last byte */
static inline void sent_done(struct worker *w, uint64_t n, uint64_t now)
{
	if (!measuring(now) || !n)
		return;
	w->requests += n;
	if (nwindows) {
		uint64_t k = (now - mstart) / o.window_ns;

		w->windows[k < nwindows ? k : nwindows - 1] += n;
	}
}

static inline void count_send(struct worker *w, uint64_t due, uint64_t now)
{
	if (!measuring(due))
		return;
	w->sent++;
	if (interval_ns > 0 && now >= due + LATE_NS)
		w->late++;
}

/* ---- requests ---------------------------------------------------------------- */

static void make_request(const struct conn *c, uint64_t seq, char *dst)
{
	memcpy(dst, c->tmpl, o.bs);
	memcpy(dst, &seq, HDR(o.bs));       /* little-endian: x86 and arm64 both */
}

/* Compares len echoed bytes at offset off of request seq; 0, or -1 after fail(). */
static int check_echo(const struct conn *c, uint64_t seq, unsigned off, const char *got, unsigned len)
{
	char want[8];
	unsigned i = 0;

	if (!o.verify)
		return 0;
	memcpy(want, &seq, 8);
	for (; i < len && off + i < HDR(o.bs); i++)
		if (got[i] != want[off + i])
			goto bad;
	if (i < len && memcmp(got + i, c->tmpl + off + i, len - i) == 0)
		return 0;
	for (; i < len; i++)
		if (got[i] != c->tmpl[off + i])
			goto bad;
	return 0;
bad:
	fail("echo mismatch on connection %d at byte %u of request %llu: sent 0x%02x, got 0x%02x",
	     c->idx, off + i, (unsigned long long)seq,
	     (unsigned char)(off + i < HDR(o.bs) ? want[off + i] : c->tmpl[off + i]), (unsigned char)got[i]);
	return -1;
}

static void want_out(struct worker *w, struct conn *c, int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == on)
		return;
	c->want_out = on;
	epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---- TCP ----------------------------------------------------------------------- */

static int tcp_flush(struct worker *w, struct conn *c, uint64_t now)
{
	while (c->tx_off < c->tx_len) {
		ssize_t n = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				want_out(w, c, 1);
				return 0;
			}
			fail("connection %d: send failed: %s (the server closed it?)", c->idx, strerror(errno));
			return -1;
		}
		if (o.sink)
			sent_done(w, (c->tx_total + (uint64_t)n) / o.bs - c->tx_total / o.bs, now);
		c->tx_total += (uint64_t)n;
		c->tx_off += (size_t)n;
	}
	c->tx_off = c->tx_len = 0;
	want_out(w, c, 0);
	return 1;
}

/* Queues one request due (or sent) at `due`; 0 when the buffer is full. */
static int tcp_queue(struct worker *w, struct conn *c, uint64_t due, uint64_t now)
{
	if (c->tx_len + o.bs > c->tx_cap) {
		if (!c->tx_off)
			return 0;
		memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
		if (c->tx_len + o.bs > c->tx_cap)
			return 0;
	}
	make_request(c, c->next_seq, c->tx + c->tx_len);
	c->tx_len += o.bs;
	if (!o.sink) {
		c->ts[c->next_seq % o.depth] = due;
		c->inflight++;
	}
	c->next_seq++;
	count_send(w, due, now);
	return 1;
}

static void tcp_read(struct worker *w, struct conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, w->rx, RX_CHUNK, 0);
		uint64_t now;
		const char *p = w->rx;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				fail("connection %d: recv failed: %s", c->idx, strerror(errno));
			return;
		}
		if (n == 0) {
			fail("connection %d: the server closed it", c->idx);
			return;
		}
		if (o.sink)
			continue;       /* a sink answers nothing; whatever comes is ignored */
		now = now_ns();
		while (n > 0) {
			unsigned take = o.bs - c->rx_off;

			if (!c->inflight) {
				fail("connection %d: the server sent %zd bytes more than it was sent", c->idx, n);
				return;
			}
			if ((size_t)n < take)
				take = (unsigned)n;
			if (check_echo(c, c->rx_seq, c->rx_off, p, take) < 0)
				return;
			c->rx_off += take;
			p += take;
			n -= take;
			if (c->rx_off == o.bs) {
				completed(w, c->ts[c->rx_seq % o.depth], now);
				c->rx_seq++;
				c->rx_off = 0;
				c->inflight--;
				if (interval_ns <= 0 && now < mend)       /* closed loop: the next one now */
					tcp_queue(w, c, now, now);
			}
		}
		if (tcp_flush(w, c, now) < 0)
			return;
	}
}

/* ---- UDP ------------------------------------------------------------------------ */

static int udp_flush(struct worker *w, struct conn *c, uint64_t now)
{
	struct mmsghdr mm[UDP_BATCH];
	struct iovec iov[UDP_BATCH];

	while (c->npend) {
		unsigned k = c->npend < UDP_BATCH ? c->npend : UDP_BATCH;
		int n;

		for (unsigned i = 0; i < k; i++) {
			struct udp_slot *s = &c->slots[c->pend[i]];

			make_request(c, s->seq, w->txs + (size_t)i * o.bs);
			iov[i].iov_base = w->txs + (size_t)i * o.bs;
			iov[i].iov_len = o.bs;
			memset(&mm[i], 0, sizeof(mm[i]));
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = sendmmsg(c->fd, mm, k, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				want_out(w, c, 1);
				return 0;
			}
			if (errno == ECONNREFUSED)
				fail("connection %d: nothing listens on UDP port %d (the server ended?)", c->idx,
				     ntohs(o.addr.sin_port));
			else
				fail("connection %d: send failed: %s", c->idx, strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++)
			c->slots[c->pend[i]].sent_ns = now;
		memmove(c->pend, c->pend + n, (c->npend - (unsigned)n) * sizeof(*c->pend));
		c->npend -= (unsigned)n;
	}
	want_out(w, c, 0);
	return 1;
}

/* Puts a request in slot s, due (or sent) at `due`. */
static void udp_queue(struct worker *w, struct conn *c, unsigned s, uint64_t due, uint64_t now)
{
	struct udp_slot *sl = &c->slots[s];

	sl->seq = c->next_seq++;
	sl->ts = due;
	sl->active = 1;
	c->inflight++;
	c->pend[c->npend++] = s;
	count_send(w, due, now);
}

static struct udp_slot *udp_match(struct conn *c, const char *msg)
{
	uint64_t seq = 0;

	memcpy(&seq, msg, HDR(o.bs));
	for (unsigned s = 0; s < o.depth; s++) {
		struct udp_slot *sl = &c->slots[s];

		if (sl->active && (o.bs >= 8 ? sl->seq == seq
				   : memcmp(&sl->seq, &seq, HDR(o.bs)) == 0))
			return sl;
	}
	return NULL;        /* a reply after its timeout: counted lost already */
}

static void udp_read(struct worker *w, struct conn *c)
{
	struct mmsghdr mm[UDP_BATCH];
	struct iovec iov[UDP_BATCH];

	for (;;) {
		uint64_t now;
		int n;

		for (unsigned i = 0; i < UDP_BATCH; i++) {
			iov[i].iov_base = w->rx + (size_t)i * (o.bs + 1);
			iov[i].iov_len = o.bs + 1;     /* one more: a longer reply shows */
			memset(&mm[i], 0, sizeof(mm[i]));
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(c->fd, mm, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNREFUSED)
				fail("connection %d: nothing listens on UDP port %d (the server ended?)", c->idx,
				     ntohs(o.addr.sin_port));
			else if (errno != EAGAIN)
				fail("connection %d: recv failed: %s", c->idx, strerror(errno));
			return;
		}
		if (o.sink)
			continue;
		now = now_ns();
		for (int i = 0; i < n; i++) {
			const char *msg = iov[i].iov_base;
			struct udp_slot *sl;

			if (mm[i].msg_len != o.bs) {
				fail("echo mismatch on connection %d: a reply of %u bytes, requests are %u", c->idx,
				     mm[i].msg_len, o.bs);
				return;
			}
			sl = udp_match(c, msg);
			if (!sl)
				continue;
			if (check_echo(c, sl->seq, 0, msg, o.bs) < 0)
				return;
			completed(w, sl->ts, now);
			sl->active = 0;
			c->inflight--;
			if (interval_ns <= 0 && now < mend)
				udp_queue(w, c, (unsigned)(sl - c->slots), now, now);
		}
		if (udp_flush(w, c, now) < 0)
			return;
	}
}

/* UDP echo: replies older than the timeout are lost; their slots serve again. */
static void udp_expire(struct worker *w, uint64_t now)
{
	for (unsigned i = 0; i < w->n; i++) {
		struct conn *c = &w->c[i];

		for (unsigned s = 0; s < o.depth; s++) {
			struct udp_slot *sl = &c->slots[s];
			int queued = 0;

			if (!sl->active || now < sl->sent_ns + o.timeout_ns)
				continue;
			for (unsigned k = 0; k < c->npend; k++)
				queued |= c->pend[k] == s;
			if (queued)     /* not sent yet: the socket's fault, not the network's */
				continue;
			if (measuring(sl->ts))
				w->lost++;
			sl->active = 0;
			c->inflight--;
			if (interval_ns <= 0 && now < mend)
				udp_queue(w, c, s, now, now);
		}
		if (c->npend)
			udp_flush(w, c, now);
	}
}

/* ---- the loop ------------------------------------------------------------------------ */

/* closed loop: fills each connection's depth (or, for a sink, its socket) */
static void closed_fill(struct worker *w, struct conn *c, uint64_t now)
{
	if (o.udp) {
		if (o.sink) {
			for (int b = 0; b < SINK_BATCHES; b++) {
				for (unsigned s = 0; s < UDP_BATCH; s++)
					c->pend[c->npend++] = s;
				unsigned before = c->npend;
				int r = udp_flush(w, c, now);
				unsigned took = before - c->npend;

				c->next_seq += took;
				for (unsigned k = 0; k < took; k++)
					count_send(w, now, now);
				sent_done(w, took, now);
				c->npend = 0;
				if (r <= 0)
					return;
			}
			return;
		}
		for (unsigned s = 0; s < o.depth && c->inflight < o.depth; s++)
			if (!c->slots[s].active)
				udp_queue(w, c, s, now, now);
		udp_flush(w, c, now);
		return;
	}
	if (o.sink) {
		for (int b = 0; b < SINK_BATCHES && !c->want_out; b++) {
			while (tcp_queue(w, c, now, now))
				;
			if (tcp_flush(w, c, now) <= 0)
				return;
		}
		return;
	}
	while (c->inflight < o.depth && tcp_queue(w, c, now, now))
		;
	tcp_flush(w, c, now);
}

static uint64_t due_time(const struct conn *c)
{
	return t0 + (uint64_t)(((double)c->scheduled + (double)c->idx / o.conns) * interval_ns);
}

/* open loop: sends what is due. Returns the earliest time something is due next. */
static uint64_t open_send(struct worker *w, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; i < w->n; i++) {
		struct conn *c = &w->c[i];
		uint64_t due;

		while ((due = due_time(c)) <= now && due < mend) {
			if (o.udp) {
				unsigned s = 0;

				if (o.sink) {
					if (c->npend >= o.depth)
						break;
					c->slots[0].seq = c->next_seq;      /* a sink's slots are never matched */
					c->next_seq++;
					c->pend[c->npend++] = 0;
					count_send(w, due, now);
					sent_done(w, 1, now);
				} else {
					while (s < o.depth && c->slots[s].active)
						s++;
					if (s == o.depth)
						break;      /* all in flight: it waits, its latency counting */
					udp_queue(w, c, s, due, now);
				}
			} else if ((!o.sink && c->inflight >= o.depth) || !tcp_queue(w, c, due, now)) {
				break;
			}
			c->scheduled++;
		}
		if (o.udp ? c->npend > 0 : c->tx_len > c->tx_off) {
			if (o.udp)
				udp_flush(w, c, now);
			else
				tcp_flush(w, c, now);
		}
		if (due < next)
			next = due;
	}
	return next;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[MAX_EVENTS];
	uint64_t now, last_expire = 0;

	prctl(PR_SET_NAME, "net-loadgen", 0, 0, 0);
	/* open-loop timers: the default 50 us slack would make every request late by it */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	w->tid = (pid_t)gettid();
	pthread_barrier_wait(&start_line);
	getrusage(RUSAGE_THREAD, &w->ru0);
	now = now_ns();
	if (interval_ns <= 0)
		for (unsigned i = 0; i < w->n; i++)
			closed_fill(w, &w->c[i], now);
	while (!stop_flag) {
		uint64_t wake = mend;
		struct timespec tmo;
		int n;

		if (!w->ru_started && now >= mstart) {
			getrusage(RUSAGE_THREAD, &w->ru0);
			w->ru_started = 1;
		}
		if (interval_ns > 0) {
			uint64_t next = open_send(w, now);

			if (next < wake)
				wake = next;
		}
		if (interval_ns <= 0 && o.sink && now < mend) {
			/* a closed-loop sink sends as fast as its sockets take it: every socket not
			 * waiting for room is filled again, and the loop only sleeps when all wait */
			int room = 0;

			for (unsigned i = 0; i < w->n; i++)
				if (!w->c[i].want_out) {
					closed_fill(w, &w->c[i], now);
					room |= !w->c[i].want_out;
				}
			if (room)
				wake = now;
		}
		if (!w->ru_started && mstart < wake)
			wake = mstart;
		if (o.udp && !o.sink && now + o.timeout_ns / 4 < wake)
			wake = now + o.timeout_ns / 4;
		if (now + 20000000ull < wake)   /* the stop flag is looked at every 20 ms */
			wake = now + 20000000ull;
		wake = wake > now ? wake - now : 0;
		tmo.tv_sec = (time_t)(wake / 1000000000ull);
		tmo.tv_nsec = (long)(wake % 1000000000ull);
		n = epoll_pwait2(w->epfd, ev, MAX_EVENTS, &tmo, NULL);
		if (n < 0 && errno != EINTR) {
			fail("epoll_pwait2: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n && !stop_flag; i++) {
			struct conn *c = ev[i].data.ptr;
			uint64_t t;

			if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				if (o.udp)
					udp_read(w, c);
				else
					tcp_read(w, c);
			}
			if (stop_flag)
				break;
			if (ev[i].events & EPOLLOUT) {
				t = now_ns();
				if (o.udp ? udp_flush(w, c, t) < 0 : tcp_flush(w, c, t) < 0)
					break;
				if (interval_ns <= 0 && o.sink && t < mend)
					closed_fill(w, c, t);
			}
		}
		now = now_ns();
		if (now >= mend)
			break;
		if (o.udp && !o.sink && now >= last_expire + o.timeout_ns / 4) {
			udp_expire(w, now);
			last_expire = now;
		}
	}
	w->stop_ns = now_ns();
	getrusage(RUSAGE_THREAD, &w->ru1);
	__atomic_add_fetch(&done_count, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

static uint64_t parse_u64(const char *opt, const char *v, uint64_t lo, uint64_t hi)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < lo || n > hi)
		die(2, "%s: must be an integer from %llu to %llu (got '%s')", opt, (unsigned long long)lo,
		    (unsigned long long)hi, v);
	return n;
}

static const char usage[] =
	"--proto tcp|udp --workload echo|sink --host IP --port P --connections N --iodepth D --bs BYTES "
	"--rate R --ramp_ns NS --runtime_ns NS --threads T --window_ns NS --verify 0|1 [--timeout_ns NS]";

static void parse_args(int argc, char **argv)
{
	int have_proto = 0, have_host = 0, have_port = 0, have_bs = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	o.addr.sin_family = AF_INET;
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i], *val, *eq = strchr(arg, '=');

		if (strncmp(arg, "--", 2) != 0)
			die(2, "unexpected argument '%s': use %s", arg, usage);
		if (eq) {
			*eq = '\0';
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				die(2, "%s needs a value: use %s", arg, usage);
			val = argv[++i];
		}
		if (!strcmp(arg, "--proto")) {
			if (strcmp(val, "tcp") && strcmp(val, "udp"))
				die(2, "--proto: must be tcp or udp (got '%s')", val);
			o.udp = !strcmp(val, "udp");
			have_proto = 1;
		} else if (!strcmp(arg, "--workload")) {
			if (strcmp(val, "echo") && strcmp(val, "sink"))
				die(2, "--workload: must be echo or sink (got '%s')", val);
			o.sink = !strcmp(val, "sink");
		} else if (!strcmp(arg, "--host")) {
			if (inet_pton(AF_INET, val, &o.addr.sin_addr) != 1)
				die(2, "--host: must be an IPv4 address like 127.0.0.1 (got '%s')", val);
			have_host = 1;
		} else if (!strcmp(arg, "--port")) {
			o.addr.sin_port = htons((uint16_t)parse_u64("--port", val, 1, 65535));
			have_port = 1;
		} else if (!strcmp(arg, "--connections")) {
			o.conns = (unsigned)parse_u64("--connections", val, 1, 65536);
		} else if (!strcmp(arg, "--iodepth")) {
			o.depth = (unsigned)parse_u64("--iodepth", val, 1, 4096);
		} else if (!strcmp(arg, "--bs")) {
			o.bs = (unsigned)parse_u64("--bs", val, 1, 16u << 20);
			have_bs = 1;
		} else if (!strcmp(arg, "--rate")) {
			o.rate = (double)parse_u64("--rate", val, 0, 1000000000ull);
		} else if (!strcmp(arg, "--ramp_ns")) {
			o.ramp_ns = parse_u64("--ramp_ns", val, 0, 86400ull * 1000000000ull);
		} else if (!strcmp(arg, "--runtime_ns")) {
			o.runtime_ns = parse_u64("--runtime_ns", val, 1000000ull, 86400ull * 1000000000ull);
		} else if (!strcmp(arg, "--threads")) {
			o.threads = (unsigned)parse_u64("--threads", val, 1, 1024);
		} else if (!strcmp(arg, "--window_ns")) {
			o.window_ns = parse_u64("--window_ns", val, 0, 86400ull * 1000000000ull);
		} else if (!strcmp(arg, "--verify")) {
			o.verify = (int)parse_u64("--verify", val, 0, 1);
		} else if (!strcmp(arg, "--timeout_ns")) {
			o.timeout_ns = parse_u64("--timeout_ns", val, 1000ull, 3600ull * 1000000000ull);
		} else {
			die(2, "unknown option '%s': use %s", arg, usage);
		}
	}
	if (!have_proto || !have_host || !have_port || !have_bs)
		die(2, "missing %s: use %s", !have_proto ? "--proto" : !have_host ? "--host" : !have_port ? "--port"
		    : "--bs", usage);
	if (o.udp && o.bs > 65507)
		die(2, "--bs: a UDP message is at most 65507 bytes (got %u)", o.bs);
	if (!o.threads)
		o.threads = o.conns < (unsigned)(cpus > 0 ? cpus : 1) ? o.conns : (unsigned)(cpus > 0 ? cpus : 1);
	if (o.threads > o.conns)
		die(2, "--threads: at most one thread per connection (%u threads, %u connections)", o.threads, o.conns);
	if (o.window_ns && o.runtime_ns / o.window_ns >= MAX_WINDOWS)
		die(2, "--window_ns: at most %d windows in the runtime (%llu ns windows in %llu ns)", MAX_WINDOWS,
		    (unsigned long long)o.window_ns, (unsigned long long)o.runtime_ns);
	if (o.sink && o.udp)
		o.depth = o.depth < UDP_BATCH ? UDP_BATCH : o.depth;   /* a sink's send batch */
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die(1, "out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static void connect_all(void)
{
	char host[INET_ADDRSTRLEN];
	int one = 1;

	inet_ntop(AF_INET, &o.addr.sin_addr, host, sizeof(host));
	for (unsigned t = 0; t < o.threads; t++) {
		struct worker *w = &workers[t];

		w->id = (int)t;
		w->n = o.conns / o.threads + (t < o.conns % o.threads);
		w->c = xcalloc(w->n, sizeof(*w->c));
		w->rx = xcalloc(1, o.udp ? (size_t)UDP_BATCH * (o.bs + 1) : RX_CHUNK);
		w->txs = o.udp ? xcalloc(UDP_BATCH, o.bs) : NULL;
		w->lat_min = UINT64_MAX;
		w->windows = nwindows ? xcalloc(nwindows, sizeof(uint64_t)) : NULL;
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0)
			die(1, "epoll_create1: %s", strerror(errno));
		for (unsigned i = 0; i < w->n; i++) {
			struct conn *c = &w->c[i];
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

			c->idx = (int)(t + i * o.threads);
			c->tmpl = xcalloc(1, o.bs);
			for (unsigned k = 0; k < o.bs; k++)
				c->tmpl[k] = (char)(k * 131u + (unsigned)c->idx * 7u + 1u);
			c->fd = socket(AF_INET, (o.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
			if (c->fd < 0)
				die(1, "cannot make socket %d: %s%s", c->idx, strerror(errno),
				    errno == EMFILE ? " (raise the open-files limit: ulimit -n)" : "");
			if (!o.udp)
				setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (connect(c->fd, (struct sockaddr *)&o.addr, sizeof(o.addr)) < 0)
				die(1, "cannot connect to %s:%d (%s %d): %s", host, ntohs(o.addr.sin_port),
				    o.udp ? "UDP socket" : "connection", c->idx, strerror(errno));
			/* connected while blocking (simplest); served without (one epoll loop per thread) */
			if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
				die(1, "fcntl O_NONBLOCK: %s", strerror(errno));
			if (o.udp) {
				c->slots = xcalloc(o.depth, sizeof(*c->slots));
				c->pend = xcalloc(o.depth, sizeof(*c->pend));
			} else {
				c->ts = xcalloc(o.depth, sizeof(*c->ts));
				/* a sink keeps a few batches queued; an echo at most its depth */
				c->tx_cap = (size_t)o.bs * (o.sink ? (o.depth < 16 ? 16 : o.depth) : o.depth);
				c->tx = xcalloc(1, c->tx_cap);
			}
			if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
				die(1, "epoll_ctl: %s", strerror(errno));
		}
	}
}

/* ---- the report ----------------------------------------------------------------------------- */

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
}

static void report(uint64_t stopped)
{
	uint64_t requests = 0, sent = 0, lost = 0, late = 0, lmin = UINT64_MAX, lmax = 0, lsum = 0;
	uint64_t runtime = stopped > mstart ? (stopped < mend ? stopped : mend) - mstart : 0;
	double lsq = 0;
	int first = 1;

	for (unsigned t = 0; t < o.threads; t++) {
		struct worker *w = &workers[t];

		requests += w->requests;
		sent += w->sent;
		lost += w->lost;
		late += w->late;
		lsum += w->lat_sum;
		lsq += w->lat_sumsq;
		if (w->lat_min < lmin)
			lmin = w->lat_min;
		if (w->lat_max > lmax)
			lmax = w->lat_max;
		if (t > 0)
			for (unsigned i = 0; i < KIT_PLAT_NR; i++)
				workers[0].hist[i] += w->hist[i];
	}
	printf("{\"requests\": %llu, \"bytes\": %llu, \"runtime_ns\": %llu, \"sent\": %llu, \"lost\": %llu, "
	       "\"late\": %llu, \"connections\": %u, \"hist\": [",
	       (unsigned long long)requests, (unsigned long long)requests * o.bs, (unsigned long long)runtime,
	       (unsigned long long)sent, (unsigned long long)lost, (unsigned long long)late, o.conns);
	for (unsigned i = 0; i < KIT_PLAT_NR; i++) {
		if (!workers[0].hist[i])
			continue;
		printf("%s[%u, %llu]", first ? "" : ", ", i, (unsigned long long)workers[0].hist[i]);
		first = 0;
	}
	printf("], \"windows\": [");
	for (unsigned k = 0; k < nwindows; k++) {
		uint64_t sum = 0;

		if (mstart + k * o.window_ns >= stopped)
			break;      /* stopped early: windows never reached are not zeros */
		for (unsigned t = 0; t < o.threads; t++)
			sum += workers[t].windows[k];
		printf("%s%llu", k ? ", " : "", (unsigned long long)sum);
	}
	printf("], \"lat_min_ns\": %llu, \"lat_max_ns\": %llu, \"lat_sum_ns\": %llu, \"lat_sumsq\": %.17g, "
	       "\"threads\": [", (unsigned long long)(requests ? lmin : 0), (unsigned long long)lmax,
	       (unsigned long long)lsum, lsq);
	for (unsigned t = 0; t < o.threads; t++) {
		struct worker *w = &workers[t];

		printf("%s{\"tid\": %d, \"utime_ns\": %llu, \"stime_ns\": %llu, \"nvcsw\": %ld, \"nivcsw\": %ld}",
		       t ? ", " : "", (int)w->tid,
		       (unsigned long long)(tv_ns(w->ru1.ru_utime) - tv_ns(w->ru0.ru_utime)),
		       (unsigned long long)(tv_ns(w->ru1.ru_stime) - tv_ns(w->ru0.ru_stime)),
		       w->ru1.ru_nvcsw - w->ru0.ru_nvcsw, w->ru1.ru_nivcsw - w->ru0.ru_nivcsw);
	}
	printf("]}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct timespec tick = { 0, 20000000 };
	sigset_t stop;
	int interrupted = 0;
	uint64_t stopped;

	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		return 1;
	prctl(PR_SET_NAME, "kit-net-loadgen", 0, 0, 0);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	parse_args(argc, argv);
	nwindows = o.window_ns ? (unsigned)((o.runtime_ns + o.window_ns - 1) / o.window_ns) : 0;
	interval_ns = o.rate > 0 ? 1e9 * o.conns / o.rate : 0;
	workers = xcalloc(o.threads, sizeof(*workers));
	connect_all();
	pthread_barrier_init(&start_line, NULL, o.threads + 1);
	for (unsigned t = 0; t < o.threads; t++) {
		int err = pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);

		if (err)
			die(1, "cannot start load thread %u: %s", t, strerror(err));
	}
	t0 = now_ns();
	mstart = t0 + o.ramp_ns;
	mend = mstart + o.runtime_ns;
	pthread_barrier_wait(&start_line);
	while (__atomic_load_n(&done_count, __ATOMIC_ACQUIRE) < o.threads) {
		if (sigtimedwait(&stop, NULL, &tick) > 0 && !interrupted) {
			interrupted = 1;
			stop_flag = 1;
		}
	}
	stopped = now_ns();
	for (unsigned t = 0; t < o.threads; t++) {
		pthread_join(workers[t].thread, NULL);
		if (workers[t].stop_ns < stopped)
			stopped = workers[t].stop_ns;
	}
	if (err_msg[0])
		die(1, "%s", err_msg);
	report(stopped);
	return interrupted ? 1 : 0;
}
