/*
 * io_uring - one thread, completions instead of readiness (the seed's §4):
 * accept, recv and send are SQEs and their results come back as CQEs, so
 * the thread makes one io_uring_enter per batch instead of a system call
 * per socket operation.
 *
 * Options (kit/net/servers/io_uring.py):
 *   multishot       one multishot accept and, per connection, one multishot
 *                   recv that picks its buffers from a provided-buffer ring
 *                   (UDP: multishot recvmsg). A buffer is owned by its echo
 *                   until the send completes, then goes back to the ring.
 *   registerfiles   connections are direct descriptors (fixed files; TCP:
 *                   accepted straight into a sparse table; UDP: the socket
 *                   registered).
 *   sqthread_poll   a kernel thread polls the submission queue (SQPOLL);
 *   sqthread_poll_cpu  ...on this CPU.
 *
 * A connection closes when its peer does or fails (ECONNRESET, EPIPE): its
 * last operation's completion closes it, so no CQE ever finds a reused slot.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 16384
#define UDP_SLOTS 256               /* UDP recvmsg operations in flight (not multishot) */
#define BUF_GROUP 0
#define BUF_RING_BYTES (32u << 20)  /* the provided buffers, all together, at most */
#define MAX_CONNS (1u << 20)

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SHUTDOWN, OP_CLOSE, OP_URECV, OP_USEND };
#define UD(op, id) (((uint64_t)(op) << 56) | (uint64_t)(id))
#define UD_OP(ud) ((int)((ud) >> 56))
#define UD_ID(ud) ((unsigned)((ud) & 0xffffffffu))

struct conn {
	int id;                 /* the fd, or the direct descriptor's slot */
	unsigned inflight;      /* operations whose CQE has not come yet */
	int closing;
	int recv_armed;
	int starved_next;       /* -2: not waiting for buffers; -1: last in the list */
	unsigned sent;          /* bytes of the message being sent that the socket took */
	unsigned pending;       /* (not multishot) bytes in buf to echo */
	int qhead, qtail;       /* (multishot) buffers waiting to be echoed, in order */
	char buf[];
};

struct udp_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_in peer;
	char *buf;
};

static struct io_uring ring;
static struct net_server *srv;
static struct net_counters *ctr;
static int multishot, fixed, sqpoll;
static unsigned sqe_fixed;      /* IOSQE_FIXED_FILE when registerfiles */

static struct conn **conns;
static unsigned nconns;
static int starved_head = -1;   /* connections whose multishot recv ran out of buffers */
static int udp_starved;
static int fatal;              /* a setup-like failure found in a CQE: serve() returns it */

/* the provided-buffer ring */
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned nbufs, buf_size, free_bufs;
static int *bnext;              /* next buffer in a connection's echo queue */
static unsigned *blen;          /* bytes in the buffer */
static struct msghdr *bmsg;     /* (UDP multishot) each buffer's echo */
static struct iovec *biov;
static struct msghdr recv_msg;  /* (UDP multishot) the layout recvmsg writes */

static struct udp_slot *uslots;

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&ring))) {
		if (sqpoll)
			io_uring_sqring_wait(&ring);
		else
			io_uring_submit(&ring);
	}
	return sqe;
}

/* ---- the provided buffers ------------------------------------------------ */

static int buf_ring_setup(unsigned size)
{
	struct io_uring_buf_reg reg = { 0 };
	unsigned want = BUF_RING_BYTES / size;
	int ret;

	/* a power of two between 64 and 4096 */
	for (nbufs = 64; nbufs < 4096 && nbufs * 2 <= want; nbufs *= 2)
		;
	buf_size = size;
	br = mmap(NULL, nbufs * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		  MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	bufs = malloc((size_t)nbufs * size);
	bnext = calloc(nbufs, sizeof(*bnext));
	blen = calloc(nbufs, sizeof(*blen));
	if (br == MAP_FAILED || !bufs || !bnext || !blen)
		return net_fail(ENOMEM, 1, "out of memory for %u buffers of %u bytes", nbufs, size);
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = nbufs;
	reg.bgid = BUF_GROUP;
	/* liburing 2.3 has no io_uring_setup_buf_ring: these are its steps */
	ret = io_uring_register_buf_ring(&ring, &reg, 0);
	if (ret < 0)
		return net_fail(-ret, 1, "multishot: cannot register a provided-buffer ring: %s%s", strerror(-ret),
				ret == -EINVAL ? " (kernel 5.19 or newer needed)" : "");
	io_uring_buf_ring_init(br);
	for (unsigned i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(br, bufs + (size_t)i * size, size, (unsigned short)i,
				      io_uring_buf_ring_mask(nbufs), (int)i);
	io_uring_buf_ring_advance(br, (int)nbufs);
	free_bufs = nbufs;
	return 0;
}

static void buf_return(unsigned bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * buf_size, buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(nbufs), 0);
	io_uring_buf_ring_advance(br, 1);
	free_bufs++;
}

/* ---- TCP ----------------------------------------------------------------- */

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();
	int lfd = srv->listen_fd;

	/* (direct descriptors have no close-on-exec: the kernel refuses the flag for them) */
	if (multishot && fixed)
		io_uring_prep_multishot_accept_direct(sqe, lfd, NULL, NULL, 0);
	else if (multishot)
		io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	else if (fixed)
		io_uring_prep_accept_direct(sqe, lfd, NULL, NULL, 0, IORING_FILE_INDEX_ALLOC - 1);
	else
		io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, 0));
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (multishot) {
		io_uring_prep_recv_multishot(sqe, c->id, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BUF_GROUP;
	} else {
		io_uring_prep_recv(sqe, c->id, c->buf, srv->bs, 0);
	}
	sqe->flags |= (unsigned char)sqe_fixed;
	io_uring_sqe_set_data64(sqe, UD(OP_RECV, c->id));
	c->inflight++;
	c->recv_armed = 1;
}

static void arm_send(struct conn *c, const char *data, unsigned len)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_send(sqe, c->id, data, len, MSG_NOSIGNAL);
	sqe->flags |= (unsigned char)sqe_fixed;
	io_uring_sqe_set_data64(sqe, UD(OP_SEND, c->id));
	c->inflight++;
}

/* (multishot) the head of the echo queue, from where the socket left off */
static void send_queued(struct conn *c)
{
	unsigned bid = (unsigned)c->qhead;

	arm_send(c, bufs + (size_t)bid * buf_size + c->sent, blen[bid] - c->sent);
}

static void conn_closing(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->closing) {
		c->closing = 1;
		/* a multishot recv stays armed until the socket says EOF: make it say so */
		if (c->recv_armed) {
			sqe = get_sqe();
			io_uring_prep_shutdown(sqe, c->id, SHUT_RDWR);
			sqe->flags |= (unsigned char)sqe_fixed;
			io_uring_sqe_set_data64(sqe, UD(OP_SHUTDOWN, c->id));
			c->inflight++;
		}
	}
	if (c->inflight)
		return;
	while (c->qhead >= 0) {
		unsigned bid = (unsigned)c->qhead;

		c->qhead = bnext[bid];
		buf_return(bid);
	}
	if (fixed) {
		sqe = get_sqe();
		io_uring_prep_close_direct(sqe, (unsigned)c->id);
		io_uring_sqe_set_data64(sqe, UD(OP_CLOSE, c->id));
	} else {
		close(c->id);
	}
	conns[c->id] = NULL;
	free(c);
}

static void conn_new(int id)
{
	struct conn *c;

	if ((unsigned)id >= nconns || !(c = calloc(1, sizeof(*c) + (multishot ? 0 : srv->bs)))) {
		if (fixed) {
			struct io_uring_sqe *sqe = get_sqe();

			io_uring_prep_close_direct(sqe, (unsigned)id);
			io_uring_sqe_set_data64(sqe, UD(OP_CLOSE, id));
		} else {
			close(id);
		}
		return;
	}
	c->id = id;
	c->qhead = c->qtail = -1;
	c->starved_next = -2;
	conns[id] = c;
	arm_recv(c);
}

static void starve(struct conn *c)
{
	if (c->starved_next != -2)
		return;
	c->starved_next = starved_head;
	starved_head = c->id;
}

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
	int more = cqe->flags & IORING_CQE_F_MORE;

	if (!more) {
		c->inflight--;
		c->recv_armed = 0;
	}
	if (cqe->res > 0) {
		unsigned n = (unsigned)cqe->res;

		ctr->rx_msgs++;
		ctr->rx_bytes += n;
		if (multishot) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

			free_bufs--;
			if (srv->workload == NET_SINK || c->closing) {
				buf_return(bid);
			} else {
				blen[bid] = n;
				bnext[bid] = -1;
				if (c->qtail >= 0) {
					bnext[c->qtail] = (int)bid;
					c->qtail = (int)bid;
				} else {
					c->qhead = c->qtail = (int)bid;
					c->sent = 0;
					send_queued(c);
				}
			}
			if (!more && !c->closing) {
				if (free_bufs)
					arm_recv(c);
				else
					starve(c);
			}
		} else if (srv->workload == NET_ECHO) {
			c->pending = n;
			c->sent = 0;
			arm_send(c, c->buf, n);
		} else {
			arm_recv(c);
		}
		return;
	}
	if (cqe->res == -ENOBUFS && !c->closing) {
		/* the ring ran dry: echoes in flight give buffers back, then it re-arms */
		if (free_bufs)
			arm_recv(c);
		else
			starve(c);
		return;
	}
	if (cqe->res == -EINTR || cqe->res == -EAGAIN) {
		if (!more && !c->closing)
			arm_recv(c);
		return;
	}
	conn_closing(c);        /* 0: EOF; ECONNRESET...: the peer is gone */
}

static void on_send(struct conn *c, struct io_uring_cqe *cqe)
{
	c->inflight--;
	if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR) {
		conn_closing(c);        /* EPIPE, ECONNRESET */
		return;
	}
	if (c->closing) {
		conn_closing(c);
		return;
	}
	if (cqe->res > 0) {
		c->sent += (unsigned)cqe->res;
		ctr->tx_bytes += (unsigned)cqe->res;
	}
	if (multishot) {
		unsigned bid = (unsigned)c->qhead;

		if (c->sent < blen[bid]) {      /* a short send: the rest, before anything after it */
			send_queued(c);
			return;
		}
		ctr->tx_msgs++;
		c->qhead = bnext[bid];
		if (c->qhead < 0)
			c->qtail = -1;
		buf_return(bid);
		c->sent = 0;
		if (c->qhead >= 0)
			send_queued(c);
	} else {
		if (c->sent < c->pending) {
			arm_send(c, c->buf + c->sent, c->pending - c->sent);
			return;
		}
		ctr->tx_msgs++;
		arm_recv(c);
	}
}

static int transient(int err)
{
	return err == ECONNABORTED || err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
	       err == EINTR || err == EAGAIN || err == EPROTO || err == EPERM;
}

static void on_tcp_cqe(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned id = UD_ID(ud);
	struct conn *c;

	switch (UD_OP(ud)) {
	case OP_ACCEPT:
		if (cqe->res >= 0) {
			conn_new(cqe->res);
		} else if (!transient(-cqe->res)) {
			fatal = net_fail(-cqe->res, 1, "accept failed: %s", strerror(-cqe->res));
			return;
		}
		/* a full table or an aborted connection costs that connection only */
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_accept();
		return;
	case OP_CLOSE:
		return;
	}
	c = id < nconns ? conns[id] : NULL;
	if (!c)
		return;
	switch (UD_OP(ud)) {
	case OP_RECV:
		on_recv(c, cqe);
		break;
	case OP_SEND:
		on_send(c, cqe);
		break;
	case OP_SHUTDOWN:
		c->inflight--;
		conn_closing(c);
		break;
	}
}

/* ---- UDP ----------------------------------------------------------------- */

static int udp_fd(void)
{
	return fixed ? 0 : srv->listen_fd;
}

static void arm_urecv(unsigned slot)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (multishot) {
		io_uring_prep_recvmsg_multishot(sqe, udp_fd(), &recv_msg, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BUF_GROUP;
	} else {
		struct udp_slot *u = &uslots[slot];

		u->iov.iov_len = srv->bs;
		u->msg.msg_namelen = sizeof(u->peer);
		io_uring_prep_recvmsg(sqe, udp_fd(), &u->msg, 0);
	}
	sqe->flags |= (unsigned char)sqe_fixed;
	io_uring_sqe_set_data64(sqe, UD(OP_URECV, slot));
}

static void on_udp_cqe(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned id = UD_ID(ud);
	struct io_uring_sqe *sqe;

	if (!multishot) {
		struct udp_slot *u = &uslots[id];

		if (UD_OP(ud) == OP_USEND) {
			if (cqe->res >= 0) {
				ctr->tx_msgs++;
				ctr->tx_bytes += (unsigned)cqe->res;
			}
			arm_urecv(id);
			return;
		}
		if (cqe->res < 0 || srv->workload == NET_SINK) {
			if (cqe->res >= 0) {
				ctr->rx_msgs++;
				ctr->rx_bytes += (unsigned)cqe->res;
			}
			arm_urecv(id);  /* an ICMP error of an earlier echo, EINTR: receive again */
			return;
		}
		ctr->rx_msgs++;
		ctr->rx_bytes += (unsigned)cqe->res;
		u->iov.iov_len = (size_t)cqe->res;
		sqe = get_sqe();
		io_uring_prep_sendmsg(sqe, udp_fd(), &u->msg, MSG_NOSIGNAL);
		sqe->flags |= (unsigned char)sqe_fixed;
		io_uring_sqe_set_data64(sqe, UD(OP_USEND, id));
		return;
	}
	if (UD_OP(ud) == OP_USEND) {
		if (cqe->res >= 0) {
			ctr->tx_msgs++;
			ctr->tx_bytes += (unsigned)cqe->res;
		}
		buf_return(id);
	} else {
		int more = cqe->flags & IORING_CQE_F_MORE;

		if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			char *b = bufs + (size_t)bid * buf_size;
			struct io_uring_recvmsg_out *o;

			free_bufs--;
			o = io_uring_recvmsg_validate(b, cqe->res, &recv_msg);
			if (!o) {
				buf_return(bid);
			} else {
				unsigned len = io_uring_recvmsg_payload_length(o, cqe->res, &recv_msg);

				ctr->rx_msgs++;
				ctr->rx_bytes += len;
				if (srv->workload == NET_SINK) {
					buf_return(bid);
				} else {
					struct msghdr *m = &bmsg[bid];

					biov[bid].iov_base = io_uring_recvmsg_payload(o, &recv_msg);
					biov[bid].iov_len = len;
					memset(m, 0, sizeof(*m));
					m->msg_name = io_uring_recvmsg_name(o);
					m->msg_namelen = o->namelen < sizeof(struct sockaddr_in) ?
						o->namelen : sizeof(struct sockaddr_in);
					m->msg_iov = &biov[bid];
					m->msg_iovlen = 1;
					sqe = get_sqe();
					io_uring_prep_sendmsg(sqe, udp_fd(), m, MSG_NOSIGNAL);
					sqe->flags |= (unsigned char)sqe_fixed;
					io_uring_sqe_set_data64(sqe, UD(OP_USEND, bid));
				}
			}
		}
		if (!more) {
			if (free_bufs)
				arm_urecv(0);
			else
				udp_starved = 1;        /* -ENOBUFS: re-armed when an echo gives a buffer back */
		}
	}
}

/* ---- setup and the loop ---------------------------------------------------- */

static int bool_option(const char *name)
{
	int v = net_option_int(srv, name, 0);

	if (v != 0 && v != 1) {
		net_fail(EINVAL, 2, "--opt %s: must be 0 or 1 (got %d)", name, v);
		return -1;
	}
	return v;
}

static int ring_setup(void)
{
	struct io_uring_params p;
	int cpu = net_option_int(srv, "sqthread_poll_cpu", -1);
	int ret;

	if (cpu >= 0 && !sqpoll)
		return net_fail(EINVAL, 2, "--opt sqthread_poll_cpu: needs sqthread_poll=1");
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	if (sqpoll) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = 1000;
		if (cpu >= 0) {
			p.flags |= IORING_SETUP_SQ_AFF;
			p.sq_thread_cpu = (unsigned)cpu;
		}
		ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
	} else {
		/* completions run when this thread asks for them, not as interrupting task work */
		p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
		if (ret == -EINVAL) {
			memset(&p, 0, sizeof(p));
			p.flags = IORING_SETUP_CQSIZE;
			p.cq_entries = CQ_ENTRIES;
			ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
		}
	}
	if (ret == -EINVAL && cpu >= 0)
		return net_fail(-ret, 2, "--opt sqthread_poll_cpu=%d: not an online CPU", cpu);
	if (ret == -ENOMEM)
		return net_fail(-ret, 1, "io_uring_setup: the locked-memory limit is too small for the ring; "
				"raise it with `ulimit -l`");
	if (ret == -EPERM)
		return net_fail(-ret, 1, "io_uring_setup: not permitted (kernel.io_uring_disabled, or a "
				"seccomp/container policy)");
	if (ret < 0)
		return net_fail(-ret, 1, "io_uring_setup: %s", strerror(-ret));
	return 0;
}

static int setup(void)
{
	struct rlimit rl;
	int ret;

	if ((multishot = bool_option("multishot")) < 0 || (fixed = bool_option("registerfiles")) < 0 ||
	    (sqpoll = bool_option("sqthread_poll")) < 0)
		return -EINVAL;
	sqe_fixed = fixed ? IOSQE_FIXED_FILE : 0;
	if ((ret = ring_setup()) < 0)
		return ret;
	if (srv->proto == NET_TCP) {
		getrlimit(RLIMIT_NOFILE, &rl);
		nconns = rl.rlim_cur < MAX_CONNS ? (unsigned)rl.rlim_cur : MAX_CONNS;
		if (fixed) {
			/* the kernel allows a table of RLIMIT_NOFILE entries at most */
			nconns = nconns < 65536 ? nconns : 65536;
			ret = io_uring_register_files_sparse(&ring, nconns);
			if (ret < 0)
				return net_fail(-ret, 1, "registerfiles: cannot register a table of %u files: %s",
						nconns, strerror(-ret));
		}
		conns = calloc(nconns, sizeof(*conns));
		if (!conns)
			return net_fail(ENOMEM, 1, "out of memory for %u connections", nconns);
		if (multishot && (ret = buf_ring_setup(srv->bs)) < 0)
			return ret;
		arm_accept();
		return 0;
	}
	if (fixed && (ret = io_uring_register_files(&ring, &srv->listen_fd, 1)) < 0)
		return net_fail(-ret, 1, "registerfiles: cannot register the socket: %s", strerror(-ret));
	if (multishot) {
		recv_msg.msg_namelen = sizeof(struct sockaddr_in);
		if ((ret = buf_ring_setup((unsigned)sizeof(struct io_uring_recvmsg_out) +
					  (unsigned)sizeof(struct sockaddr_in) + srv->bs)) < 0)
			return ret;
		bmsg = calloc(nbufs, sizeof(*bmsg));
		biov = calloc(nbufs, sizeof(*biov));
		if (!bmsg || !biov)
			return net_fail(ENOMEM, 1, "out of memory for %u messages", nbufs);
		arm_urecv(0);
		return 0;
	}
	uslots = calloc(UDP_SLOTS, sizeof(*uslots));
	if (!uslots)
		return net_fail(ENOMEM, 1, "out of memory for %u messages", UDP_SLOTS);
	for (unsigned i = 0; i < UDP_SLOTS; i++) {
		struct udp_slot *u = &uslots[i];

		if (!(u->buf = malloc(srv->bs)))
			return net_fail(ENOMEM, 1, "out of memory for %u messages", UDP_SLOTS);
		u->iov.iov_base = u->buf;
		u->msg.msg_name = &u->peer;
		u->msg.msg_iov = &u->iov;
		u->msg.msg_iovlen = 1;
		arm_urecv(i);
	}
	return 0;
}

static void rearm_starved(void)
{
	while (starved_head >= 0 && free_bufs) {
		struct conn *c = conns[starved_head];

		starved_head = c->starved_next;
		c->starved_next = -2;
		if (!c->closing)
			arm_recv(c);
	}
	if (udp_starved && free_bufs) {
		udp_starved = 0;
		arm_urecv(0);
	}
}

static int serve(struct net_server *s)
{
	int ret;

	srv = s;
	net_set_thread_name("net-loop");
	ctr = net_counters();
	if ((ret = setup()) < 0)
		return ret;
	net_thread_started();
	net_ready(s);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
			return net_fail(-ret, 1, "io_uring_enter: %s", strerror(-ret));
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (s->proto == NET_TCP)
				on_tcp_cqe(cqe);
			else
				on_udp_cqe(cqe);
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
		if (fatal)
			return fatal;
		rearm_starved();
	}
}

const struct net_engine net_engine = { .name = "io_uring", .uses_socket = 1, .serve = serve };
