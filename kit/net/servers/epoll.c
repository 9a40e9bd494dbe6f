/*
 * epoll - one thread, nonblocking sockets, readiness (the seed's §2: epoll
 * says when a socket can be read or written; the read and the write are
 * still the thread's own system calls). Level-triggered by default; with
 * trigger=edge the loop reads each socket until EAGAIN, as edge triggering
 * requires. A send the socket takes only part of waits in the connection's
 * buffer for EPOLLOUT, and the connection is not read meanwhile (the peer
 * then feels TCP's back-pressure, as it should).
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct conn {
	int fd;
	unsigned pending, sent;     /* echo bytes in buf not yet taken by the socket */
	uint32_t events;            /* the interest registered (level-triggered) */
	char buf[];
};

static int edge;
static int epfd;
static struct net_counters *ctr;

static void conn_close(struct conn *c)
{
	close(c->fd);      /* closing removes it from the epoll set */
	free(c);
}

static int want(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (edge || c->events == events)
		return 0;
	c->events = events;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what is pending. 1: all sent, 0: the socket is full, -1: the peer is gone. */
static int flush(struct conn *c)
{
	while (c->sent < c->pending) {
		ssize_t n = send(c->fd, c->buf + c->sent, c->pending - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->sent += (unsigned)n;
		ctr->tx_bytes += (uint64_t)n;
	}
	ctr->tx_msgs++;
	c->pending = c->sent = 0;
	return 1;
}

static void tcp_event(struct net_server *s, struct conn *c, uint32_t events)
{
	if (c->pending) {
		int r = flush(c);

		if (r < 0)
			goto gone;
		if (r == 0) {
			if (want(c, EPOLLOUT) < 0)
				goto gone;
			return;
		}
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, s->bs, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			goto gone;      /* ECONNRESET and friends */
		}
		if (n == 0)
			goto gone;
		ctr->rx_msgs++;
		ctr->rx_bytes += (uint64_t)n;
		if (s->workload == NET_ECHO) {
			int r;

			c->pending = (unsigned)n;
			c->sent = 0;
			r = flush(c);
			if (r < 0)
				goto gone;
			if (r == 0) {
				if (want(c, EPOLLOUT) < 0)
					goto gone;
				return;
			}
		}
		if (!edge)      /* level-triggered: one read per readiness, epoll says if there is more */
			break;
	}
	if (want(c, EPOLLIN) < 0)
		goto gone;
	(void)events;
	return;
gone:
	conn_close(c);
}

static void accept_all(struct net_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;
		struct conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			return;     /* EAGAIN: all taken; EMFILE etc.: epoll tells us again (level) */
		}
		c = malloc(sizeof(*c) + s->bs);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->pending = c->sent = 0;
		c->events = EPOLLIN;
		ev.events = edge ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET : EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_close(c);
			continue;
		}
		if (!edge)
			continue;
		/* edge: data may have come before the registration; read now */
		tcp_event(s, c, EPOLLIN);
	}
}

static void udp_event(struct net_server *s, char *buf)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(s->listen_fd, buf, s->bs, 0, (struct sockaddr *)&peer, &plen);

		if (n < 0) {
			if (errno == EAGAIN)
				return;
			continue;       /* EINTR, an ICMP error of an earlier send */
		}
		ctr->rx_msgs++;
		ctr->rx_bytes += (uint64_t)n;
		/* a full socket buffer drops the echo, as the network would */
		if (s->workload == NET_ECHO &&
		    sendto(s->listen_fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&peer, plen) == n) {
			ctr->tx_msgs++;
			ctr->tx_bytes += (uint64_t)n;
		}
		if (!edge)
			return;
	}
}

static int serve(struct net_server *s)
{
	const char *trigger = net_option(s, "trigger");
	struct epoll_event ev, events[MAX_EVENTS];
	char *udp_buf = NULL;

	if (trigger && strcmp(trigger, "level") && strcmp(trigger, "edge"))
		return net_fail(EINVAL, 2, "--opt trigger: must be level or edge (got '%s')", trigger);
	edge = trigger && !strcmp(trigger, "edge");
	net_set_thread_name("net-loop");
	ctr = net_counters();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return net_fail(errno, 1, "epoll_create1: %s", strerror(errno));
	/* the listener (or UDP socket) too: accept_all and udp_event read until EAGAIN */
	if (fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK) < 0)
		return net_fail(errno, 1, "fcntl O_NONBLOCK: %s", strerror(errno));
	if (s->proto == NET_UDP && !(udp_buf = malloc(s->bs)))
		return net_fail(ENOMEM, 1, "out of memory for a %u-byte buffer", s->bs);
	ev.events = EPOLLIN | (edge ? EPOLLET : 0);
	ev.data.ptr = NULL;     /* NULL: the listening (or the UDP) socket */
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0)
		return net_fail(errno, 1, "epoll_ctl: %s", strerror(errno));
	net_thread_started();
	net_ready(s);
	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return net_fail(errno, 1, "epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			if (events[i].data.ptr)
				tcp_event(s, events[i].data.ptr, events[i].events);
			else if (s->proto == NET_TCP)
				accept_all(s);
			else
				udp_event(s, udp_buf);
		}
	}
}

const struct net_engine net_engine = { .name = "epoll", .uses_socket = 1, .serve = serve };
