"""The running kernel's own type information (BTF, /sys/kernel/btf/vmlinux):
where a field sits in a kernel struct and what an enum's names are worth.

The tracers read raw tracepoint arguments (a struct request *, not a trace
record), so they need the layout of *this* kernel's structs; the headers
bcc compiles against are another version's (Debian's generic ones). BTF
is the kernel's own description of itself, so the offsets are right by
construction. Parsed once per process: about half a second for 5 MiB.
"""
import functools
import struct

from ._bpf import TraceUnavailable

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F

# bytes after the 12-byte common header, per BTF kind (linux/btf.h)
_EXTRA = {1: lambda n: 4, 2: lambda n: 0, 3: lambda n: 12, 4: lambda n: 12 * n, 5: lambda n: 12 * n,
          6: lambda n: 8 * n, 7: lambda n: 0, 8: lambda n: 0, 9: lambda n: 0, 10: lambda n: 0,
          11: lambda n: 0, 12: lambda n: 0, 13: lambda n: 8 * n, 14: lambda n: 4, 15: lambda n: 12 * n,
          16: lambda n: 0, 17: lambda n: 4, 18: lambda n: 0, 19: lambda n: 12 * n}
STRUCT, UNION, ENUM, ENUM64 = 4, 5, 6, 19


class Btf:
    def __init__(self, data):
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        if magic != MAGIC:
            raise ValueError("not BTF")
        self._types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self._strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.structs, self.enums = {}, {}
        self._at = [0]          # where each type (by id, from 1) starts: anonymous members are found by id
        pos = 0
        while pos < len(self._types):
            name_off, info, _size = struct.unpack_from("<III", self._types, pos)
            kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            if kind not in _EXTRA:
                raise ValueError(f"unknown BTF kind {kind}")
            self._at.append(pos)
            start, pos = pos + 12, pos + 12 + _EXTRA[kind](vlen)
            if kind == STRUCT and name_off:
                self.structs.setdefault(self._name(name_off), (start, vlen, kind_flag))
            elif kind in (ENUM, ENUM64):
                step = 8 if kind == ENUM else 12
                for k in range(vlen):
                    member_name, value = struct.unpack_from("<Ii", self._types, start + step * k)
                    self.enums.setdefault(self._name(member_name), value)

    def _name(self, offset):
        return self._strings[offset:self._strings.index(b"\0", offset)].decode()

    def offset(self, struct_name, field):
        """Byte offset of a field of a kernel struct (by name), also inside
        its anonymous structs and unions (sk_buff's dev is two levels down)."""
        if struct_name not in self.structs:
            raise KeyError(f"struct {struct_name}")
        found = self._member(*self.structs[struct_name], field)
        if found is None:
            raise KeyError(f"struct {struct_name}.{field}")
        return found

    def _member(self, start, vlen, kind_flag, field):
        anonymous = []
        for k in range(vlen):
            name_off, type_id, bits = struct.unpack_from("<III", self._types, start + 12 * k)
            offset = (bits & 0xFFFFFF if kind_flag else bits) // 8
            if name_off and self._name(name_off) == field:
                return offset
            if not name_off:
                anonymous.append((type_id, offset))
        for type_id, offset in anonymous:
            pos = self._at[type_id] if type_id < len(self._at) else None
            if pos is None:
                continue
            _name, info, _size = struct.unpack_from("<III", self._types, pos)
            if (info >> 24) & 0x1F in (STRUCT, UNION):
                inner = self._member(pos + 12, info & 0xFFFF, info >> 31, field)
                if inner is not None:
                    return offset + inner
        return None


@functools.lru_cache(maxsize=1)
def vmlinux():
    try:
        with open(VMLINUX, "rb") as fh:
            return Btf(fh.read())
    except OSError as e:
        raise TraceUnavailable(f"the tracers need the kernel's BTF ({VMLINUX}: {e.strerror}); "
                               "a kernel built with CONFIG_DEBUG_INFO_BTF has it") from None
    except (ValueError, struct.error) as e:
        raise TraceUnavailable(f"cannot read the kernel's BTF ({VMLINUX}): {e}") from None


def defines(fields, enums=()):
    """#defines for a BPF program: OFF_<STRUCT>_<FIELD> byte offsets and the
    values of enum names, from this kernel."""
    b = vmlinux()
    lines = []
    try:
        for struct_name, field in fields:
            lines.append(f"#define OFF_{struct_name.upper()}_{field.strip('_').upper()} "
                         f"{b.offset(struct_name, field)}")
        for name in enums:
            lines.append(f"#define {name.strip('_').upper()} {b.enums[name]}")
    except KeyError as e:
        raise TraceUnavailable(f"this kernel's BTF has no {e.args[0]}: its block layer is not one kit knows") \
            from None
    return "\n".join(lines) + "\n"
