/*
 * threads - blocking sockets, the oldest way (the seed's §2): TCP gets one
 * thread per connection behind an accept loop; UDP gets N threads that all
 * recvfrom/sendto on the one socket.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* the buffer lives on the heap: the stack only needs room for libc */
#define WORKER_STACK (64 << 10)

struct worker {
	struct net_server *s;
	int fd;
};

/* Sends all of buf, however short each send() is. 0, or -errno. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One TCP connection, until the peer closes it or fails. */
static void *tcp_worker(void *arg)
{
	struct worker *w = arg;
	struct net_server *s = w->s;
	struct net_counters *c;
	char *buf = malloc(s->bs);

	net_set_thread_name("net-worker");
	c = net_counters();
	while (buf && c) {
		ssize_t n = recv(w->fd, buf, s->bs, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)     /* EOF, ECONNRESET...: this connection ends, the server goes on */
			break;
		c->rx_msgs++;
		c->rx_bytes += (uint64_t)n;
		if (s->workload == NET_ECHO) {
			if (send_all(w->fd, buf, (size_t)n) < 0)    /* EPIPE, ECONNRESET */
				break;
			c->tx_msgs++;
			c->tx_bytes += (uint64_t)n;
		}
	}
	close(w->fd);
	free(buf);
	free(w);
	net_counters_release();
	return NULL;
}

static int start_worker(pthread_attr_t *attr, void *(*fn)(void *), struct worker *w)
{
	pthread_t t;
	int err = pthread_create(&t, attr, fn, w);

	if (!err)
		net_thread_started();
	return -err;
}

static int serve_tcp(struct net_server *s)
{
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	net_set_thread_name("net-accept");
	net_ready(s);
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		struct worker *w;
		int err;

		if (fd < 0) {
			/* the peer gave up before we took it, or a passing shortage: keep accepting */
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM || errno == EPROTO || errno == EPERM) {
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
					usleep(1000);
				continue;
			}
			return net_fail(errno, 1, "accept failed: %s", strerror(errno));
		}
		w = malloc(sizeof(*w));
		if (!w) {
			close(fd);
			continue;
		}
		w->s = s;
		w->fd = fd;
		err = start_worker(&attr, tcp_worker, w);
		if (err) {      /* out of threads: this connection is refused, the others go on */
			close(fd);
			free(w);
		}
	}
}

static void *udp_worker(void *arg)
{
	struct worker *w = arg;
	struct net_server *s = w->s;
	struct net_counters *c;
	char *buf = malloc(s->bs);
	struct sockaddr_storage peer;

	net_set_thread_name("net-worker");
	c = net_counters();
	while (buf && c) {
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(w->fd, buf, s->bs, 0, (struct sockaddr *)&peer, &plen);

		if (n < 0)      /* EINTR, or an ICMP error of an earlier send: not this socket's end */
			continue;
		c->rx_msgs++;
		c->rx_bytes += (uint64_t)n;
		if (s->workload == NET_ECHO &&
		    sendto(w->fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&peer, plen) == n) {
			c->tx_msgs++;
			c->tx_bytes += (uint64_t)n;
		}
	}
	return NULL;
}

static int serve_udp(struct net_server *s)
{
	unsigned n = s->threads ? s->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	pthread_attr_t attr;
	struct worker *w;

	w = calloc(n ? n : 1, sizeof(*w));
	if (!w)
		return net_fail(ENOMEM, 1, "out of memory for %u threads", n);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	/* this thread is worker 0; the others start beside it */
	for (unsigned i = 0; i < n; i++) {
		w[i].s = s;
		w[i].fd = s->listen_fd;
		if (i > 0) {
			int err = start_worker(&attr, udp_worker, &w[i]);

			if (err)
				return net_fail(-err, 1, "cannot start UDP thread %u of %u: %s", i + 1, n, strerror(-err));
		}
	}
	net_thread_started();
	net_ready(s);
	udp_worker(&w[0]);
	return net_fail(ENOMEM, 1, "out of memory for a %u-byte buffer", s->bs);
}

static int serve(struct net_server *s)
{
	return s->proto == NET_TCP ? serve_tcp(s) : serve_udp(s);
}

const struct net_engine net_engine = { .name = "threads", .uses_socket = 1, .serve = serve };
