/*
 * asio.cpp - kit's Boost.Asio network server: TCP and UDP echo/sink on one
 * io_context run by --threads threads ("asio-io"), on the socket the driver
 * bound. TCP: async_accept, then per connection async_read_some followed by
 * async_write of what came (echo) or another read (sink). UDP: one
 * async_receive_from per thread in flight on the one socket, each answered
 * with async_send_to (echo) or re-armed (sink).
 *
 * Asio picks its reactor at compile time: epoll by default; built with
 * BOOST_ASIO_HAS_IO_URING and BOOST_ASIO_DISABLE_EPOLL (kit-net-asio-io_uring)
 * every socket operation goes through its io_uring service instead.
 */
#include <boost/asio.hpp>
#include <boost/version.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "../server.h"

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;

namespace {

struct net_server *server;

/* Handlers run on whichever io thread took the completion: each thread counts
 * into its own slot. */
thread_local struct net_counters *counters;

struct net_counters &count()
{
	if (!counters)
		counters = net_counters();
	static struct net_counters overflow;    /* past NET_MAX_COUNTERS threads: uncounted */
	return counters ? *counters : overflow;
}

class tcp_connection : public std::enable_shared_from_this<tcp_connection> {
public:
	explicit tcp_connection(tcp::socket sock) : sock_(std::move(sock)), buf_(server->bs) {}

	void start() { read(); }

private:
	void read()
	{
		auto self = shared_from_this();
		sock_.async_read_some(asio::buffer(buf_), [this, self](error_code ec, std::size_t n) {
			if (ec)         /* the peer closed or reset: the connection ends here */
				return;
			struct net_counters &c = count();
			c.rx_msgs++;
			c.rx_bytes += n;
			if (server->workload == NET_ECHO)
				write(n);
			else
				read();
		});
	}

	void write(std::size_t n)
	{
		auto self = shared_from_this();
		asio::async_write(sock_, asio::buffer(buf_.data(), n), [this, self](error_code ec, std::size_t sent) {
			if (ec)
				return;
			struct net_counters &c = count();
			c.tx_msgs++;
			c.tx_bytes += sent;
			read();
		});
	}

	tcp::socket sock_;
	std::vector<char> buf_;
};

class tcp_server {
public:
	tcp_server(asio::io_context &io, int fd) : acceptor_(io), retry_(io)
	{
		acceptor_.assign(tcp::v4(), fd);
	}

	void accept()
	{
		acceptor_.async_accept([this](error_code ec, tcp::socket sock) {
			if (!ec) {
				sock.set_option(tcp::no_delay(true), ec);   /* replies go out at once, as the C engines' */
				std::make_shared<tcp_connection>(std::move(sock))->start();
				accept();
				return;
			}
			/* EMFILE/ENFILE/ENOBUFS: try again shortly rather than spin */
			retry_.expires_after(std::chrono::milliseconds(10));
			retry_.async_wait([this](error_code) { accept(); });
		});
	}

private:
	tcp::acceptor acceptor_;
	asio::steady_timer retry_;
};

/* One datagram in flight on the shared socket: its buffer and its sender. */
class udp_slot {
public:
	udp_slot(udp::socket &sock) : sock_(sock), buf_(server->bs) {}

	void receive()
	{
		sock_.async_receive_from(asio::buffer(buf_), peer_, [this](error_code ec, std::size_t n) {
			if (ec) {       /* e.g. ECONNREFUSED from an earlier send's ICMP: keep serving */
				receive();
				return;
			}
			struct net_counters &c = count();
			c.rx_msgs++;
			c.rx_bytes += n;
			if (server->workload == NET_SINK) {
				receive();
				return;
			}
			sock_.async_send_to(asio::buffer(buf_.data(), n), peer_, [this](error_code ec, std::size_t sent) {
				if (!ec) {
					struct net_counters &c = count();
					c.tx_msgs++;
					c.tx_bytes += sent;
				}
				receive();
			});
		});
	}

private:
	udp::socket &sock_;
	std::vector<char> buf_;
	udp::endpoint peer_;
};

std::atomic<unsigned> threads_serving{0};

void join_io()
{
	net_set_thread_name("asio-io");
	count();
	net_thread_started();
	threads_serving++;
}

void run_io(asio::io_context &io)
{
	join_io();
	/* run() returns only if the work runs out, which it never does: the
	 * acceptor or the receives are always re-armed */
	io.run();
}

#ifdef BOOST_ASIO_HAS_IO_URING
const char *const backend = "io_uring";
#else
const char *const backend = "epoll";
#endif

int serve(struct net_server *s)
{
	server = s;
	/* the runner picks the executable by asio_backend; a mismatch would
	 * measure the other backend under this one's name */
	const char *wanted = net_option(s, "asio_backend");
	if (wanted && std::strcmp(wanted, backend) != 0)
		return net_fail(EINVAL, 2, "asio: this executable is Asio's %s build; asio_backend=%s is kit-net-asio%s",
				backend, wanted, std::strcmp(wanted, "epoll") == 0 ? "" : "-io_uring");
	unsigned threads = s->threads ? s->threads : 1;
	try {
		asio::io_context io(static_cast<int>(threads));
		std::unique_ptr<tcp_server> tcp_srv;
		std::unique_ptr<udp::socket> udp_sock;
		std::vector<std::unique_ptr<udp_slot>> slots;
		if (s->proto == NET_TCP) {
			tcp_srv = std::make_unique<tcp_server>(io, s->listen_fd);
			tcp_srv->accept();
		} else {
			udp_sock = std::make_unique<udp::socket>(io);
			udp_sock->assign(udp::v4(), s->listen_fd);
			/* as many datagrams in flight as threads to take them */
			for (unsigned i = 0; i < threads; i++) {
				slots.push_back(std::make_unique<udp_slot>(*udp_sock));
				slots.back()->receive();
			}
		}
		std::vector<std::thread> pool;
		for (unsigned i = 1; i < threads; i++) {
			pool.emplace_back([&io] { run_io(io); });
		}
		/* this thread serves too; the ready line counts every one serving */
		join_io();
		while (threads_serving.load() < threads)
			std::this_thread::yield();
		net_ready(s);
		io.run();
		for (auto &t : pool)
			t.join();
		return net_fail(EINVAL, 1, "asio: the io_context ran out of work (an internal error)");
	} catch (const boost::system::system_error &e) {
		return net_fail(e.code().value() ? e.code().value() : EINVAL, 1, "asio: %s", e.what());
	} catch (const std::system_error &e) {
		return net_fail(e.code().value() ? e.code().value() : EINVAL, 1,
				"asio: cannot start a serving thread: %s", e.what());
	} catch (const std::exception &e) {
		return net_fail(ENOMEM, 1, "asio: %s", e.what());
	}
}

} // namespace

extern "C" const struct net_engine net_engine = {"asio", 1, serve};
