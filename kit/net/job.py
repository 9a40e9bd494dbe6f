"""The network job: what `kit net` and kit.net() take, validated once.

Options are kit.options.Option rows, under fio's names where fio has the
concept (fio's net engine: protocol, port, bs; rate_iops, runtime,
ramp_time, iodepth, verify) and kit's own beside them (server, workload,
connections, network, threads, server_threads); each server engine's own
options come from its module (kit/net/servers/<name>.py). A bad value
raises OptionError naming the option and what is allowed.
"""
import dataclasses
import difflib

from ..errors import OptionError
from ..options import Option, size_text, time_text
from .servers import engine, engine_names, engine_options, server_threads

MAX_CONNECTIONS = 4096
MAX_IODEPTH = 1024
MAX_TCP_BS = 1 << 20
MAX_UDP_BS = 65507          # the largest UDP payload over IPv4 (65535 - 8 - 20)
MAX_THREADS = 1024
MAX_SERVER_THREADS = 1016   # server.c: NET_MAX_COUNTERS less the driver's own threads
# the load generator's bounds (loadgen.c's parse_args): refused here, in kit's
# words, before anything is built or started
MAX_RATE_IOPS = 1_000_000_000
MIN_RUNTIME_S = 0.001
MAX_TIME_S = 86400

COMMON = (
    Option("server", "choice", "epoll", "the server engine", choices=engine_names),
    Option("protocol", "choice", "tcp", "tcp or udp (fio's net engine's protocol)", choices=("tcp", "udp")),
    Option("workload", "choice", "echo", "echo: every request comes back (round trips, latency); sink: the "
           "server only receives (requests/s from its counters)", choices=("echo", "sink")),
    Option("connections", "int", 1, "client connections (UDP: sockets), spread over the client threads",
           lo=1, hi=MAX_CONNECTIONS),
    Option("iodepth", "int", 1, "requests in flight per connection (1: ping-pong, netperf's TCP_RR)",
           lo=1, hi=MAX_IODEPTH),
    Option("bs", "size", 64, f"message size in bytes (64, 1k; UDP at most {MAX_UDP_BS})"),
    Option("rate_iops", "int", 0, "requests/s over all connections, latency measured from each request's "
           "scheduled time (0: closed loop, as fast as it goes)", lo=0, hi=MAX_RATE_IOPS),
    Option("runtime", "time", 5.0, "measure this long (seconds, or 500ms, 2m)"),
    Option("ramp_time", "time", 0.0, "run this long before measuring"),
    Option("network", "choice", "veth", "veth: client and server in namespaces of their own, joined by a veth "
           "pair; loopback: both on 127.0.0.1 in kit's namespace", choices=("veth", "loopback")),
    Option("port", "int", 0, "the server's port (0: a free one)", lo=0, hi=65535),
    Option("verify", "bool", True, "1: check every echoed byte against what was sent (a mismatch fails the run)"),
    Option("threads", "int", 0, "load generator threads (0: min(connections, online CPUs))", lo=0,
           hi=MAX_THREADS),
    Option("server_threads", "int", 0, "serving threads, for engines that run several (0: the engine's "
           "default)", lo=0, hi=MAX_SERVER_THREADS),
)


def _declared():
    out = {o.name: (dataclasses.replace(o, choices=engine_names) if o.name == "server" else o) for o in COMMON}
    for name, option in engine_options().items():
        if name in out:
            raise RuntimeError(f"network engine option {name} has the name of a common one")
        out[name] = option
    return out


class NetJob:
    """One network workload. NetJob(server="epoll", connections=16, bs="1k");
    values are parsed ('1k', '500ms', '1'). Immutable and always valid."""

    def __init__(self, **options):
        declared = _declared()
        values, given = {}, set()
        for raw, value in options.items():
            name = raw.replace("-", "_")
            if name not in declared:
                close = difflib.get_close_matches(name, list(declared), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise OptionError(raw, f"is not a network option{hint}; `kit net --help` lists them")
            if name in given:
                raise OptionError(raw, "is given twice; give it once")
            given.add(name)
            values[name] = declared[name].parse(value)
        for name, option in declared.items():
            values.setdefault(name, option.default)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_given", frozenset(given))
        self._check(declared)

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("a NetJob is immutable: use replace()")

    def __eq__(self, other):
        return isinstance(other, NetJob) and self._values == other._values

    def __hash__(self):
        return hash(tuple(sorted((k, str(v)) for k, v in self._values.items())))

    def __repr__(self):
        return "NetJob(" + ", ".join(f"{k}={self._values[k]!r}" for k in sorted(self._given)) + ")"

    def _check(self, declared):
        server = engine(self.server)
        for name in self._given:
            option = declared[name]
            if option.engines and self.server not in option.engines:
                raise OptionError(name, f"only server={' or '.join(option.engines)} has it "
                                        f"(server is {self.server})")
            for needed, why in option.requires:
                if self._values[name] is not None and self._values[name] is not False and not self._values[needed]:
                    raise OptionError(name, why)
        if self.protocol not in server.PROTOCOLS:
            raise OptionError("protocol", f"server={self.server} serves {' and '.join(server.PROTOCOLS)} only "
                                          f"(got {self.protocol})")
        top = MAX_UDP_BS if self.protocol == "udp" else MAX_TCP_BS
        if not 1 <= self.bs <= top:
            why = " (the largest UDP payload over IPv4)" if self.protocol == "udp" else ""
            raise OptionError("bs", f"must be from 1 to {top} bytes with protocol={self.protocol}{why} "
                                    f"(got {self.bs})")
        own_top = getattr(server, "MAX_BS", None)
        if own_top and self.bs > own_top:
            raise OptionError("bs", f"server={self.server} serves messages of at most {own_top} bytes "
                                    f"(got {self.bs})")
        if not getattr(server, "KERNEL_ADDRESS", True) and self.network != "veth":
            raise OptionError("network", f"server={self.server} takes over the server's interface: it runs "
                                         "only with network=veth")
        if not MIN_RUNTIME_S <= self.runtime <= MAX_TIME_S:
            raise OptionError("runtime", f"must be from 1ms to {MAX_TIME_S // 3600}h (e.g. 5, 500ms, 2m; got "
                                         f"{_time_words(self.runtime)})")
        if self.ramp_time > MAX_TIME_S:
            raise OptionError("ramp_time", f"must be at most {MAX_TIME_S // 3600}h (got {_time_words(self.ramp_time)})")
        if self.workload == "sink" and self.verify and "verify" in self._given:
            raise OptionError("verify", "workload=sink echoes nothing back to check: leave verify out")
        if self.server_threads > 1 and self.protocol not in server_threads(self.server):
            where = [n for n in engine_names() if server_threads(n)]
            counts = "; ".join(f"server={n} with {' or '.join(server_threads(n))}" for n in where)
            raise OptionError("server_threads", f"server={self.server} with protocol={self.protocol} decides its "
                                                f"own serving threads; server_threads sets them only for {counts}")
        if self.threads > self.connections:
            raise OptionError("threads", f"must be at most connections ({self.connections}): a client thread "
                                         f"serves whole connections (got {self.threads})")

    # -- views

    def given(self):
        return {k: self._values[k] for k in self._given}

    def to_dict(self):
        return dict(self._values)

    def replace(self, **changes):
        merged = self.given()
        merged.update({k.replace("-", "_"): v for k, v in changes.items()})
        return NetJob(**merged)

    @property
    def engine_options(self):
        """The server engine's own options the user gave: name -> value."""
        own = {o.name for o in engine(self.server).OPTIONS}
        return {k: self._values[k] for k in sorted(self._given & own)}

    @property
    def variant(self):
        """The server executable's variant the engine's options call for
        (asio_backend=io_uring: kit-net-asio-io_uring), or None."""
        pick = getattr(engine(self.server), "variant", None)
        return pick(self.engine_options) if pick else None

    @property
    def label(self):
        """The engine and the features it was asked for (io_uring+multishot),
        then protocol and workload: 'io_uring+multishot tcp echo'."""
        parts = [self.server]
        declared = _declared()
        for name, value in self.engine_options.items():
            option = declared[name]
            if value and value != option.default:
                parts.append(str(value) if option.kind == "choice" else name)
        return f"{'+'.join(parts)} {self.protocol} {self.workload}"

    def text(self, name):
        """A value as it is written on a command line and in a result's job
        options (fio's units: sizes in bytes or k/m, times in seconds)."""
        value = self._values[name]
        if isinstance(value, bool):
            return "1" if value else "0"
        kind = _declared()[name].kind
        if kind == "size":
            return size_text(value)
        if kind == "time":
            return time_text(value)
        return str(value)

    def written(self):
        """Every option (defaults too: two runs of one workload list the same
        options) as text under its name, as fio's JSON lists job options."""
        return {name: self.text(name) for name in _declared()
                if (name in COMMON_NAMES or name in self._given) and self._values[name] is not None}

    def server_args(self):
        """The engine's own options as the server takes them: --opt name=value."""
        out = []
        for name, value in self.engine_options.items():
            if value is None:
                continue
            text = "1" if value is True else "0" if value is False else str(int(value)) \
                if isinstance(value, float) and value.is_integer() else str(value)
            out += ["--opt", f"{name}={text}"]
        return out

    @classmethod
    def from_written(cls, options):
        """A NetJob back from a result's job options (what written() made)."""
        declared = _declared()
        return cls(**{k: v for k, v in options.items() if k in declared and v != _default_text(declared[k])})


COMMON_NAMES = frozenset(o.name for o in COMMON)


def _time_words(seconds):
    """A time with its unit, as a user would write it: 10us, 500ms, 360000s."""
    text = time_text(seconds)
    return text if text[-1].isalpha() else f"{text}s"


def _default_text(option):
    value = option.default
    if isinstance(value, bool):
        return "1" if value else "0"
    return option.text(value)


def options():
    """Every network option: the common ones, then each engine's own."""
    return _declared()
