/*
 * server.c - the driver every kit-net-<engine> executable shares: the
 * command line, the bound socket, the ready/stats/error lines on stdout and
 * the process's end (net-spec.md, "Process protocol").
 *
 * Threads: main parses, binds, starts the engine's serve() on a thread of its
 * own ("net-serve", engines rename it), starts the stdin reader
 * ("net-control"), then waits for SIGTERM/SIGINT with sigwait. SIGTERM,
 * SIGINT and EOF on stdin all end the same way: a final stats line, _exit(0).
 * The signals are blocked before any thread starts, so no thread ever runs a
 * handler (nothing is printed from signal context).
 */
#define _GNU_SOURCE
#include "server.h"
#include "json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGE (1u << 30)

static struct net_server server = { .listen_fd = -1 };

/* One lock for every line written to stdout, so lines never interleave. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Counter slots. A thread that ends gives its slot back (its counts move to
 * `retired`), so engines that start a thread per connection never run out. */
static struct net_counters slots[NET_MAX_COUNTERS];
static int slot_free[NET_MAX_COUNTERS];
static int nslot_free, nslot_used;
static struct net_counters retired;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct net_counters *my_slot;

static unsigned threads_started;
static int ready_said;

/* set once the engine is ready or has failed: an EOF waits for it (SETTLE_S at most) */
#define SETTLE_S 2
static int settled;
static pthread_mutex_t settle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t settle_cond = PTHREAD_COND_INITIALIZER;

static void settle(void)
{
	pthread_mutex_lock(&settle_lock);
	settled = 1;
	pthread_cond_broadcast(&settle_cond);
	pthread_mutex_unlock(&settle_lock);
}

static char fail_msg[512];
static int fail_code = 1;

/* ---- output ---------------------------------------------------------- */

static void say_line(const char *line)
{
	pthread_mutex_lock(&out_lock);
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void say_error_and_exit(int code, const char *msg)
{
	char esc[1024], line[1200];

	json_escape(esc, sizeof(esc), msg);
	snprintf(line, sizeof(line), "{\"error\": \"%s\", \"code\": %d}", esc, code);
	say_line(line);
	_exit(code);
}

static void __attribute__((format(printf, 1, 2))) bad_arg(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say_error_and_exit(2, msg);
}

static void say_stats(void)
{
	struct net_counters sum;
	char line[512];

	pthread_mutex_lock(&slot_lock);
	sum = retired;
	for (int i = 0; i < nslot_used; i++) {
		/* a serving thread writes its slot while we read it: each 64-bit
		 * load is whole, and kit only needs a moment's snapshot */
		sum.rx_msgs += __atomic_load_n(&slots[i].rx_msgs, __ATOMIC_RELAXED);
		sum.rx_bytes += __atomic_load_n(&slots[i].rx_bytes, __ATOMIC_RELAXED);
		sum.tx_msgs += __atomic_load_n(&slots[i].tx_msgs, __ATOMIC_RELAXED);
		sum.tx_bytes += __atomic_load_n(&slots[i].tx_bytes, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&slot_lock);
	snprintf(line, sizeof(line),
		 "{\"stats\": {\"rx_msgs\": %llu, \"rx_bytes\": %llu, \"tx_msgs\": %llu, \"tx_bytes\": %llu, "
		 "\"threads_started\": %u}}",
		 (unsigned long long)sum.rx_msgs, (unsigned long long)sum.rx_bytes,
		 (unsigned long long)sum.tx_msgs, (unsigned long long)sum.tx_bytes,
		 __atomic_load_n(&threads_started, __ATOMIC_RELAXED));
	say_line(line);
}

static _Noreturn void finish(void)
{
	say_stats();
	_exit(0);
}

/* ---- the engine's API (server.h) -------------------------------------- */

const char *net_option(const struct net_server *s, const char *name)
{
	for (int i = 0; i < s->nopts; i++)
		if (strcmp(s->opt_names[i], name) == 0)
			return s->opt_values[i];
	return NULL;
}

int net_option_int(const struct net_server *s, const char *name, int absent)
{
	const char *v = net_option(s, name);
	char *end;
	long n;

	if (!v)
		return absent;
	errno = 0;
	n = strtol(v, &end, 0);
	if (errno || end == v || *end || n < INT_MIN || n > INT_MAX)
		bad_arg("--opt %s=%s: must be an integer", name, v);
	return (int)n;
}

struct net_counters *net_counters(void)
{
	if (my_slot)
		return my_slot;
	pthread_mutex_lock(&slot_lock);
	if (nslot_free > 0)
		my_slot = &slots[slot_free[--nslot_free]];
	else if (nslot_used < NET_MAX_COUNTERS)
		my_slot = &slots[nslot_used++];
	pthread_mutex_unlock(&slot_lock);
	return my_slot;
}

void net_counters_release(void)
{
	struct net_counters *c = my_slot;

	if (!c)
		return;
	pthread_mutex_lock(&slot_lock);
	retired.rx_msgs += c->rx_msgs;
	retired.rx_bytes += c->rx_bytes;
	retired.tx_msgs += c->tx_msgs;
	retired.tx_bytes += c->tx_bytes;
	memset(c, 0, sizeof(*c));
	slot_free[nslot_free++] = (int)(c - slots);
	pthread_mutex_unlock(&slot_lock);
	my_slot = NULL;
}

void net_thread_started(void)
{
	__atomic_add_fetch(&threads_started, 1, __ATOMIC_RELAXED);
}

void net_ready(struct net_server *s)
{
	char line[256];

	if (__atomic_exchange_n(&ready_said, 1, __ATOMIC_ACQ_REL))
		return;
	snprintf(line, sizeof(line), "{\"ready\": true, \"port\": %d, \"pid\": %d, \"threads_started\": %u}",
		 s->port, (int)getpid(), __atomic_load_n(&threads_started, __ATOMIC_RELAXED));
	say_line(line);
	settle();
}

int net_fail(int err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
	va_end(ap);
	fail_code = code;
	return err > 0 ? -err : (err ? err : -EIO);
}

void net_set_thread_name(const char *name)
{
	prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* ---- command line ------------------------------------------------------ */

static const char usage[] =
	"--proto tcp|udp --workload echo|sink --bind ADDR --port P --bs BYTES "
	"[--iface NAME] [--threads N] [--opt name=value]...";

static unsigned long parse_uint(const char *opt, const char *v, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < lo || n > hi)
		bad_arg("%s: must be an integer from %lu to %lu (got '%s')", opt, lo, hi, v);
	return n;
}

static void parse_args(int argc, char **argv)
{
	int have_proto = 0, have_workload = 0, have_bind = 0, have_port = 0, have_bs = 0;
	struct net_server *s = &server;

	s->addr.sin_family = AF_INET;
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i], *val, *eq;

		if (strncmp(arg, "--", 2) != 0)
			bad_arg("unexpected argument '%s': use %s", arg, usage);
		eq = strchr(arg, '=');
		if (eq && strncmp(arg, "--opt=", 6) != 0) {
			*eq = '\0';
			val = eq + 1;
		} else if (eq) {
			val = arg + 6;
			arg[5] = '\0';
		} else {
			if (i + 1 >= argc)
				bad_arg("%s needs a value: use %s", arg, usage);
			val = argv[++i];
		}
		if (!strcmp(arg, "--proto")) {
			if (!strcmp(val, "tcp"))
				s->proto = NET_TCP;
			else if (!strcmp(val, "udp"))
				s->proto = NET_UDP;
			else
				bad_arg("--proto: must be tcp or udp (got '%s')", val);
			have_proto = 1;
		} else if (!strcmp(arg, "--workload")) {
			if (!strcmp(val, "echo"))
				s->workload = NET_ECHO;
			else if (!strcmp(val, "sink"))
				s->workload = NET_SINK;
			else
				bad_arg("--workload: must be echo or sink (got '%s')", val);
			have_workload = 1;
		} else if (!strcmp(arg, "--bind")) {
			if (inet_pton(AF_INET, val, &s->addr.sin_addr) != 1)
				bad_arg("--bind: must be an IPv4 address like 127.0.0.1 (got '%s')", val);
			have_bind = 1;
		} else if (!strcmp(arg, "--port")) {
			s->addr.sin_port = htons((uint16_t)parse_uint("--port", val, 0, 65535));
			have_port = 1;
		} else if (!strcmp(arg, "--bs")) {
			s->bs = (unsigned)parse_uint("--bs", val, 1, MAX_MESSAGE);
			have_bs = 1;
		} else if (!strcmp(arg, "--iface")) {
			if (!*val || strlen(val) >= 16)
				bad_arg("--iface: must be an interface name of 1 to 15 characters (got '%s')", val);
			s->iface = val;
		} else if (!strcmp(arg, "--threads")) {
			s->threads = (unsigned)parse_uint("--threads", val, 1, NET_MAX_COUNTERS - 8);
		} else if (!strcmp(arg, "--opt")) {
			char *oeq = strchr(val, '=');

			if (s->nopts >= NET_MAX_OPTS)
				bad_arg("--opt: at most %d options", NET_MAX_OPTS);
			if (oeq == val || !*val)
				bad_arg("--opt: must be name=value (got '%s')", val);
			if (oeq)
				*oeq = '\0';
			s->opt_names[s->nopts] = val;
			s->opt_values[s->nopts] = oeq ? oeq + 1 : "1";
			s->nopts++;
		} else {
			bad_arg("unknown option '%s': use %s", arg, usage);
		}
	}
	if (!have_proto || !have_workload || !have_bind || !have_port || !have_bs)
		bad_arg("missing %s: use %s",
			!have_proto ? "--proto" : !have_workload ? "--workload" : !have_bind ? "--bind"
			: !have_port ? "--port" : "--bs", usage);
	if (s->proto == NET_UDP && s->bs > 65507)
		bad_arg("--bs: a UDP message is at most 65507 bytes (got %u)", s->bs);
}

/* ---- the socket, the threads ------------------------------------------ */

/* Whether every TCP socket of this namespace on `port` is in TIME_WAIT (and there is one). */
static int only_time_wait(unsigned port)
{
	static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	int waiting = 0;

	for (unsigned t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		FILE *f = fopen(tables[t], "re");
		char line[512];

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned lport, state;

			if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &lport, &state) != 2 ||
			    lport != port)
				continue;
			if (state != 6) {       /* TCP_TIME_WAIT */
				fclose(f);
				return 0;
			}
			waiting = 1;
		}
		fclose(f);
	}
	return waiting;
}

static void bind_socket(struct net_server *s)
{
	char addr[INET_ADDRSTRLEN];
	struct sockaddr_in got;
	socklen_t len = sizeof(got);
	int one = 1, fd;

	inet_ntop(AF_INET, &s->addr.sin_addr, addr, sizeof(addr));
	fd = socket(AF_INET, (s->proto == NET_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(fail_msg, sizeof(fail_msg), "cannot make a socket: %s", strerror(errno));
		say_error_and_exit(1, fail_msg);
	}
	/* No SO_REUSEADDR before the bind: with it, a UDP socket (or a TCP socket bound and not
	 * listening) of someone else's that set it too would share the port, and lose its traffic to
	 * kit. Only TIME_WAIT connections, and nothing else, may hold a TCP port kit retakes; the
	 * kernel lets it when they too were SO_REUSEADDR's, so a TCP listener sets it once bound (its
	 * connections inherit it) for the next run on that port. */
	int bound = bind(fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) == 0, err = bound ? 0 : errno;

	if (!bound && err == EADDRINUSE && s->proto == NET_TCP && only_time_wait(ntohs(s->addr.sin_port)) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0) {
		bound = bind(fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) == 0;
		err = bound ? 0 : errno;
	}
	if (bound && s->proto == NET_TCP)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!bound) {
		if (err == EADDRINUSE)
			snprintf(fail_msg, sizeof(fail_msg), "port %d is in use on %s: choose another --port or 0",
				 ntohs(s->addr.sin_port), addr);
		else if (err == EADDRNOTAVAIL)
			snprintf(fail_msg, sizeof(fail_msg), "--bind %s: no interface here has that address", addr);
		else if (err == EACCES)
			snprintf(fail_msg, sizeof(fail_msg), "port %d on %s needs privileges: choose a port above 1023 or 0",
				 ntohs(s->addr.sin_port), addr);
		else
			snprintf(fail_msg, sizeof(fail_msg), "cannot bind %s:%d: %s", addr, ntohs(s->addr.sin_port),
				 strerror(err));
		say_error_and_exit(1, fail_msg);
	}
	if (s->proto == NET_TCP) {
		/* accepted sockets inherit TCP_NODELAY: small echoes must not wait for Nagle */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (listen(fd, SOMAXCONN) < 0) {
			snprintf(fail_msg, sizeof(fail_msg), "cannot listen on %s:%d: %s", addr,
				 ntohs(s->addr.sin_port), strerror(errno));
			say_error_and_exit(1, fail_msg);
		}
	}
	getsockname(fd, (struct sockaddr *)&got, &len);
	s->listen_fd = fd;
	s->port = ntohs(got.sin_port);
}

static void *serve_thread(void *arg)
{
	struct net_server *s = arg;
	int rc;

	net_set_thread_name("net-serve");
	rc = net_engine.serve(s);
	if (!fail_msg[0])
		snprintf(fail_msg, sizeof(fail_msg), "the %s engine stopped: %s", net_engine.name,
			 strerror(rc < 0 ? -rc : EIO));
	say_error_and_exit(fail_code, fail_msg);
	return NULL;
}

static void *control_thread(void *arg)
{
	char line[256];
	struct timespec until;

	(void)arg;
	net_set_thread_name("net-control");
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!strcmp(line, "stats"))
			say_stats();
		else if (line[0])
			say_line("{\"error\": \"unknown request on stdin: send 'stats', or close stdin to stop\", "
				 "\"code\": 2}");
	}
	/* EOF before the engine said ready or why not: let it say (a bad --opt is
	 * worth its one line), for a moment at most, then end anyway */
	pthread_mutex_lock(&settle_lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SETTLE_S;
	while (!settled && pthread_cond_timedwait(&settle_cond, &settle_lock, &until) == 0)
		;
	pthread_mutex_unlock(&settle_lock);
	finish();
}

static void start_thread(void *(*fn)(void *), void *arg, const char *what)
{
	pthread_t t;
	int err = pthread_create(&t, NULL, fn, arg);

	if (err) {
		snprintf(fail_msg, sizeof(fail_msg), "cannot start the %s thread: %s", what, strerror(err));
		say_error_and_exit(1, fail_msg);
	}
	pthread_detach(t);
}

int main(int argc, char **argv)
{
	char name[16];
	sigset_t stop;
	int sig;

	/* kit died before we got here: end now rather than serve nobody */
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		return 0;
	snprintf(name, sizeof(name), "kit-net-%s", net_engine.name);
	net_set_thread_name(name);

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	/* a peer gone mid-send is EPIPE for that connection, not the process's end */
	signal(SIGPIPE, SIG_IGN);

	parse_args(argc, argv);
	if (net_engine.uses_socket)
		bind_socket(&server);
	start_thread(control_thread, NULL, "control");
	start_thread(serve_thread, &server, "serving");
	for (;;) {
		if (sigwait(&stop, &sig) == 0)
			finish();
	}
}
