/*
 * dpdk.c - kit's DPDK network server: a UDP echo and a UDP sink at the packet
 * level, on the poll-mode driver of a kernel interface (--iface): af_xdp
 * (default; veth has native XDP, so the program runs in its driver and
 * frames are copied into the socket's umem) or af_packet (dpdk_pmd=af_packet).
 * One lcore, the serving thread itself ("lcore-0"), polls rx_burst, keeps the
 * IPv4/UDP datagrams for its address and port, swaps the Ethernet, IP and
 * UDP addresses for the echo and sends them back with tx_burst; it answers
 * ARP requests for its address, so the client needs no static neighbour.
 *
 * EAL runs with --no-pci --no-huge --no-shconf --no-telemetry (--in-memory
 * refuses --no-huge; --no-shconf is its part that matters here): no
 * hugepages and no files, so the kernel's freeing of the process's memory and
 * sockets is the whole of the clean-up. With --opt hugepages=N, EAL runs
 * --in-memory -m 2N instead: it maps N 2 MiB pages anonymously from the
 * kernel's pool (MAP_HUGETLB, or a memfd where a hugetlbfs is mounted), at
 * start, and still makes no files; the pool itself is kit's Python side's to
 * reserve and give back (dpdk.py), as the server can be killed at any time.
 * EAL still makes its runtime directory, empty in either mode: the engine
 * removes it once EAL is up.
 * DPDK has no TCP stack: TCP is refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_xdp.h>

#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_udp.h>
#include <rte_version.h>

#include "../server.h"

#define BURST 32
#define NB_MBUFS 8191          /* rx + tx rings and a burst in hand, with room */
#define TX_TRIES 64            /* tx_burst calls before what the ring will not take is dropped */
#define ECHO_PORT 7            /* port 0 asks the engine to choose: RFC 862's echo */
#define DISCARD_PORT 9         /* and RFC 863's discard, for the sink */
#define UDP_IP_HEADERS (sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr))
#define HUGEPAGE_MB 2          /* hugepages=N counts 2 MiB pages */
#define MAX_HUGEPAGES 1024     /* as dpdk.py's option row says */
#define HUGEPAGES_NEEDED 10    /* measured (DPDK 22.11, af_xdp and af_packet): EAL, the mbuf pool and the PMD */

struct dpdk_server {
	uint16_t port_id;
	rte_be32_t ip;             /* the address served; 0: any (and no ARP answers) */
	rte_be16_t udp_port;
	struct rte_ether_addr mac;
	int echo;
	struct net_counters *c;
};

/* The largest UDP payload one frame carries on the interface: the engine
 * neither reassembles nor fragments IP. 0 and a message when it cannot tell. */
static unsigned max_payload(const char *iface, char *why, size_t len)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		snprintf(why, len, "cannot read the MTU of %s: %s", iface, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	close(fd);
	unsigned frame = RTE_MBUF_DEFAULT_DATAROOM - RTE_ETHER_HDR_LEN;   /* one mbuf, no chains */
	unsigned mtu = (unsigned)ifr.ifr_mtu < frame ? (unsigned)ifr.ifr_mtu : frame;
	return mtu > UDP_IP_HEADERS ? mtu - UDP_IP_HEADERS : 0;
}

static int is_loopback(const char *iface)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int yes = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_LOOPBACK);
	if (fd >= 0)
		close(fd);
	return yes;
}

/* What stops the PMD before EAL is asked, each in one line for the user. */
static int check_machine(struct net_server *s, int xdp)
{
	if (xdp) {
		int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
		if (fd < 0 && (errno == EAFNOSUPPORT || errno == EINVAL))
			return net_fail(errno, 1, "dpdk: this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); "
					"use dpdk_pmd=af_packet");
		if (fd < 0)
			return net_fail(errno, 1, "dpdk: cannot open an AF_XDP socket (%s); af_xdp needs root "
					"(CAP_NET_RAW, CAP_BPF, CAP_SYS_ADMIN)", strerror(errno));
		close(fd);
		/* libxdp is kept away from bpffs, where its dispatcher pins state
		 * (and makes a directory) that a killed server would leave behind:
		 * pointed at no bpffs, it attaches its socket-steering XDP program
		 * directly, so no bpffs is needed either. That program stays on the
		 * interface after a kill and the next start reuses it; kit's veth,
		 * and the program with it, end with the run. */
		setenv("LIBXDP_BPFFS", "/dev/null/no-bpffs", 1);
		setenv("LIBXDP_SKIP_DISPATCHER", "1", 1);
	} else {
		int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return net_fail(errno, 1, "dpdk: cannot open an AF_PACKET socket (%s); af_packet needs "
					"root (CAP_NET_RAW)", strerror(errno));
		close(fd);
	}
	(void)s;
	return 0;
}

/* The CPUs this process may run on, as EAL's --lcores writes them, so the
 * lcore floats over the same CPUs as the other engines' threads do. */
static void allowed_cpus(char *out, size_t len)
{
	cpu_set_t set;
	size_t n = 0;
	out[0] = '\0';
	if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		snprintf(out, len, "0");
		return;
	}
	for (int cpu = 0; cpu < CPU_SETSIZE && n + 8 < len; cpu++)
		if (CPU_ISSET(cpu, &set))
			n += snprintf(out + n, len - n, "%s%d", n ? "," : "", cpu);
}

/* EAL's runtime directory (root's), made even when nothing goes in it. */
#define DPDK_RUN_DIR "/var/run/dpdk"

static void remove_runtime_dir(int had_run_dir)
{
	char dir[256];
	snprintf(dir, sizeof(dir), DPDK_RUN_DIR "/kit-net-dpdk-%d", (int)getpid());
	rmdir(dir);                     /* refuses if anything is in it: then it is not ours to judge */
	if (!had_run_dir)
		rmdir(DPDK_RUN_DIR);
}

/* An ARP request for our address becomes our reply, in place. */
static int answer_arp(struct dpdk_server *d, struct rte_mbuf *m, struct rte_ether_hdr *eth)
{
	if (!d->ip || m->data_len < RTE_ETHER_HDR_LEN + sizeof(struct rte_arp_hdr))
		return 0;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) ||
	    arp->arp_data.arp_tip != d->ip)
		return 0;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	arp->arp_data.arp_tha = arp->arp_data.arp_sha;
	arp->arp_data.arp_tip = arp->arp_data.arp_sip;
	arp->arp_data.arp_sha = d->mac;
	arp->arp_data.arp_sip = d->ip;
	eth->dst_addr = eth->src_addr;
	eth->src_addr = d->mac;
	return 1;
}

/* Keeps a datagram for us: counts it and, for the echo, turns it around.
 * Returns 1 when it is to be sent back (*payload: its length), 0 when it
 * was counted and is done with, -1 when it is not ours. */
static int take_udp(struct dpdk_server *d, struct rte_mbuf *m, struct rte_ether_hdr *eth, unsigned *payload_len)
{
	uint32_t len = m->data_len;
	if (len < RTE_ETHER_HDR_LEN + UDP_IP_HEADERS)
		return -1;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	unsigned ihl = rte_ipv4_hdr_len(ip);
	if ((ip->version_ihl >> 4) != 4 || ihl < sizeof(*ip) || ip->next_proto_id != IPPROTO_UDP ||
	    len < RTE_ETHER_HDR_LEN + ihl + sizeof(struct rte_udp_hdr))
		return -1;
	/* a fragment: the engine does not reassemble (max_payload keeps kit's own traffic whole) */
	if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return -1;
	if (d->ip && ip->dst_addr != d->ip)
		return -1;
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)((char *)ip + ihl);
	uint16_t dgram = rte_be_to_cpu_16(udp->dgram_len);
	if (udp->dst_port != d->udp_port || dgram < sizeof(*udp) ||
	    RTE_ETHER_HDR_LEN + ihl + dgram > len || rte_be_to_cpu_16(ip->total_length) != ihl + dgram)
		return -1;
	unsigned payload = dgram - sizeof(*udp);
	d->c->rx_msgs++;
	d->c->rx_bytes += payload;
	if (!d->echo)
		return 0;

	struct rte_ether_addr mac = eth->src_addr;
	eth->src_addr = eth->dst_addr;
	eth->dst_addr = mac;
	rte_be32_t addr = ip->src_addr;
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = addr;
	rte_be16_t port = udp->src_port;
	udp->src_port = udp->dst_port;
	udp->dst_port = port;
	/* The IP header's sum does not change with its words swapped. The UDP
	 * sum is computed whole: on a veth the sender's kernel leaves it to an
	 * offload (CHECKSUM_PARTIAL) and the frame carries only the pseudo
	 * header's part, which a kernel stack would complete in software too. */
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	/* frames shorter than Ethernet's minimum came padded: send back only the datagram */
	m->data_len = m->pkt_len = RTE_ETHER_HDR_LEN + ihl + dgram;
	*payload_len = payload;
	return 1;
}

static void serve_packets(struct dpdk_server *d)
{
	struct rte_mbuf *rx[BURST], *tx[BURST];
	unsigned tx_payload[BURST];
	uint8_t tx_echo[BURST];
	for (;;) {
		uint16_t n = rte_eth_rx_burst(d->port_id, 0, rx, BURST);
		uint16_t ntx = 0;
		for (uint16_t i = 0; i < n; i++) {
			struct rte_mbuf *m = rx[i];
			struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
			unsigned payload = 0;      /* stays 0 for an ARP reply: not a message */
			int send = 0;
			if (m->data_len >= RTE_ETHER_HDR_LEN) {
				if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
					send = take_udp(d, m, eth, &payload) > 0;
				else if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
					send = answer_arp(d, m, eth);
			}
			if (send) {
				tx_payload[ntx] = payload;
				tx_echo[ntx] = eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
				tx[ntx++] = m;
			} else {
				rte_pktmbuf_free(m);
			}
		}
		if (!ntx)
			continue;
		uint16_t sent = 0;
		for (int tries = 0; sent < ntx && tries < TX_TRIES; tries++)
			sent += rte_eth_tx_burst(d->port_id, 0, tx + sent, ntx - sent);
		for (uint16_t i = 0; i < sent; i++)
			if (tx_echo[i]) {
				d->c->tx_msgs++;
				d->c->tx_bytes += tx_payload[i];
			}
		/* what the ring would not take is lost, as a full socket buffer's datagram is */
		for (uint16_t i = sent; i < ntx; i++)
			rte_pktmbuf_free(tx[i]);
	}
}

static int serve(struct net_server *s)
{
	if (s->proto == NET_TCP)
		return net_fail(EINVAL, 2, "dpdk: serves UDP only: DPDK has no TCP stack (it moves packets; a TCP "
				"echo would need a user-space TCP such as F-Stack); use --proto udp");
	if (!s->iface || !*s->iface)
		return net_fail(EINVAL, 2, "dpdk: needs --iface NAME: the interface whose packets DPDK takes over");
	if (s->threads > 1)
		return net_fail(EINVAL, 2, "dpdk: --threads must be 1: one lcore polls the interface's one queue");
	if (!if_nametoindex(s->iface))
		return net_fail(ENODEV, 2, "dpdk: no interface %s in this network namespace", s->iface);
	const char *pmd = net_option(s, "dpdk_pmd");
	pmd = pmd ? pmd : "af_xdp";
	int xdp = strcmp(pmd, "af_xdp") == 0;
	if (!xdp && strcmp(pmd, "af_packet") != 0)
		return net_fail(EINVAL, 2, "dpdk: dpdk_pmd must be af_xdp or af_packet (got %s)", pmd);
	if (is_loopback(s->iface))
		return net_fail(EINVAL, 2, "dpdk: %s is a loopback interface, which DPDK cannot take over for the "
				"kernel's own traffic; use network=veth (an interface of kit's own)", s->iface);
	char why[256];
	unsigned most = max_payload(s->iface, why, sizeof(why));
	if (!most)
		return net_fail(EINVAL, 1, "dpdk: %s", why);
	if (s->bs > most)
		return net_fail(EINVAL, 2, "dpdk: --bs %u is more than one frame on %s carries (at most %u bytes of UDP "
				"payload); the engine does not fragment or reassemble IP", s->bs, s->iface, most);
	int err = check_machine(s, xdp);
	if (err)
		return err;
	const char *huge = net_option(s, "hugepages");
	char *end = NULL;
	long hugepages = huge ? strtol(huge, &end, 10) : 0;
	if (huge && (!*huge || *end || hugepages < 0 || hugepages > MAX_HUGEPAGES))
		return net_fail(EINVAL, 2, "dpdk: hugepages must be a count of 2 MiB pages from 0 to %d (got %s)",
				MAX_HUGEPAGES, huge);

	/* EAL writes its log to stdout, where the driver's protocol lines go */
	rte_openlog_stream(stderr);
	const char *level = net_option(s, "dpdk_log_level");
	char cpus[512], lcores[560], log_level[64], vdev[128], prefix[64], memory[32];
	allowed_cpus(cpus, sizeof(cpus));
	snprintf(lcores, sizeof(lcores), "--lcores=0@(%s)", cpus);
	snprintf(log_level, sizeof(log_level), "--log-level=%s", level ? level : "error");
	snprintf(vdev, sizeof(vdev), "--vdev=net_%s0,iface=%s", pmd, s->iface);
	snprintf(prefix, sizeof(prefix), "--file-prefix=kit-net-dpdk-%d", (int)getpid());
	/* -m takes the pages at start: a pool too small fails here, in EAL's words */
	snprintf(memory, sizeof(memory), "-m%ld", hugepages * HUGEPAGE_MB);
	char *argv[] = {"kit-net-dpdk", "--no-pci", "--no-huge", "--no-shconf", "--no-telemetry",
			prefix, lcores, log_level, vdev, NULL};
	if (hugepages) {
		argv[2] = "--in-memory";
		argv[3] = memory;
	}
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	int had_run_dir = access(DPDK_RUN_DIR, F_OK) == 0;
	int rc = rte_eal_init(argc, argv);
	remove_runtime_dir(had_run_dir);
	if (rc < 0 && hugepages)
		return net_fail(rte_errno, 1, "dpdk: EAL could not start on %ld hugepages (%ld MiB): %s (EAL's "
				"reason is on stderr); leave hugepages out to run without them", hugepages,
				hugepages * HUGEPAGE_MB, rte_strerror(rte_errno));
	if (rc < 0)
		return net_fail(rte_errno, 1, "dpdk: EAL could not start: %s (EAL's reason is on stderr)",
				rte_strerror(rte_errno));
	net_set_thread_name("lcore-0");     /* EAL's main lcore is this thread */
	net_thread_started();

	struct dpdk_server d = {.echo = s->workload == NET_ECHO, .ip = s->addr.sin_addr.s_addr};
	char name[64];
	snprintf(name, sizeof(name), "net_%s0", pmd);
	if (rte_eth_dev_get_port_by_name(name, &d.port_id) != 0)
		return net_fail(ENODEV, 1, "dpdk: the %s PMD could not take %s (its reason is on stderr)", pmd, s->iface);
	struct rte_mempool *pool = rte_pktmbuf_pool_create("kit_net", NB_MBUFS, 256, 0,
							   RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (!pool && hugepages)
		return net_fail(rte_errno, 1, "dpdk: no memory for %d packet buffers in %ld hugepages (%ld MiB): %s; "
				"ask for at least %d", NB_MBUFS, hugepages,
				hugepages * HUGEPAGE_MB, rte_strerror(rte_errno), HUGEPAGES_NEEDED);
	if (!pool)
		return net_fail(rte_errno, 1, "dpdk: no memory for %d packet buffers: %s", NB_MBUFS,
				rte_strerror(rte_errno));
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	rc = rte_eth_dev_configure(d.port_id, 1, 1, &conf);
	if (!rc)
		rc = rte_eth_rx_queue_setup(d.port_id, 0, 0, (unsigned)rte_eth_dev_socket_id(d.port_id), NULL, pool);
	if (!rc)
		rc = rte_eth_tx_queue_setup(d.port_id, 0, 0, (unsigned)rte_eth_dev_socket_id(d.port_id), NULL);
	if (!rc)
		rc = rte_eth_dev_start(d.port_id);
	if (rc)
		return net_fail(-rc, 1, "dpdk: the %s port on %s did not start: %s%s", pmd, s->iface, rte_strerror(-rc),
				xdp ? " (af_xdp needs XDP in the interface's driver, as veth has; dpdk_pmd=af_packet "
				      "takes any interface; the PMD's reason is on stderr)" : " (the PMD's reason is on stderr)");
	rte_eth_macaddr_get(d.port_id, &d.mac);

	uint16_t port = ntohs(s->addr.sin_port);
	if (!port)
		port = d.echo ? ECHO_PORT : DISCARD_PORT;
	d.udp_port = rte_cpu_to_be_16(port);
	s->port = port;
	d.c = net_counters();
	net_ready(s);
	serve_packets(&d);
	return 0;
}

const struct net_engine net_engine = {"dpdk", 0, serve};
