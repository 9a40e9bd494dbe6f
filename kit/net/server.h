/*
 * server.h - the interface between kit's network server driver (server.c)
 * and its engines (servers/<name>.c|.cpp). Each engine file defines exactly
 * one `const struct net_engine net_engine` and is linked with server.c into
 * its own executable, kit-net-<name>.
 *
 * The driver parses the command line, prepares the bound socket for engines
 * that use the kernel's sockets, runs the engine's serve() on a thread of
 * its own, and owns the process's end: on SIGTERM/SIGINT or EOF on stdin it
 * prints the final counters and _exit()s. Engines are therefore never asked
 * to stop: the kernel frees their sockets and rings when the process ends.
 */
#ifndef KIT_NET_SERVER_H
#define KIT_NET_SERVER_H

#include <netinet/in.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum net_proto { NET_TCP, NET_UDP };
enum net_workload { NET_ECHO, NET_SINK };

#define NET_MAX_OPTS 32
#define NET_MAX_COUNTERS 1024

/* What a serving thread counts; one cache line per thread, so no sharing. */
struct net_counters {
	uint64_t rx_msgs, rx_bytes, tx_msgs, tx_bytes;
} __attribute__((aligned(64)));

struct net_server {
	/* from the command line */
	enum net_proto proto;
	enum net_workload workload;
	struct sockaddr_in addr;   /* bind address; port as given (0: any) */
	unsigned bs;               /* the largest message: receive buffers hold this */
	const char *iface;         /* the server's interface (engines that bind a device) */
	unsigned threads;          /* serving threads, for engines that run several (0: engine's default) */
	int nopts;
	const char *opt_names[NET_MAX_OPTS];
	const char *opt_values[NET_MAX_OPTS];

	/* set up by the driver before serve() when the engine uses_socket:
	 * TCP: bound and listening (backlog SOMAXCONN); UDP: bound. -1 otherwise. */
	int listen_fd;
	/* the port actually bound, written to the ready line */
	int port;
};

struct net_engine {
	const char *name;
	int uses_socket;           /* the driver binds the kernel socket for it */
	/* Serves until the process ends. Calls net_ready() once it can serve.
	 * Returns only on failure: a negative errno, after net_fail() said why. */
	int (*serve)(struct net_server *s);
};

extern const struct net_engine net_engine;

/* The engine's option `name` as given with --opt name=value; NULL if absent.
 * Python validated the values; a bare `--opt name` reads as "1". */
const char *net_option(const struct net_server *s, const char *name);
int net_option_int(const struct net_server *s, const char *name, int absent);

/* A counters slot for the calling thread (thread-safe; the same slot for the
 * same thread). NULL once NET_MAX_COUNTERS threads have taken one. */
struct net_counters *net_counters(void);

/* Prints the ready line (once) and lets stats requests be answered. */
void net_ready(struct net_server *s);

/* Says why the engine cannot serve (one line, for the user) and returns
 * -err for serve() to return. code 2: a bad argument, 1 otherwise. */
int net_fail(int err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Counts a thread the engine started (stdasync-like engines start many). */
void net_thread_started(void);

/* A thread that ends gives its counters slot back (its counts are kept):
 * engines that start a thread per connection call it before the thread ends. */
void net_counters_release(void);

/* Names the calling thread (15 characters at most), so kit can tell roles
 * apart in /proc/PID/task/TID/comm. Names used: the main thread
 * "kit-net-<engine>", "net-control" (stdin), "net-serve" (serve() before the
 * engine renames it), "net-accept" (an accept loop), "net-worker" (a thread
 * that serves connections or datagrams), "net-loop" (a single event loop). */
void net_set_thread_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
