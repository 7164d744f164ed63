"""A real authoritative DNS server for tests, on UDP and TCP at 127.0.0.1.

Tests describe the data they need and point a resolver at the server::

    zones = {
        "example.test": [("MX", "10 mx1.example.test."), ("MX", "20 mx2.example.test.")],
        "mx1.example.test": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1", 60)],
        "_spf.example.test": [("TXT", "v=spf1 -all")],
    }
    with DnsServer(zones) as server:
        resolver = make_resolver([server.nameserver])

The server answers only for the names it holds and everything below their
last label (``.test`` above): names it does not know get NXDOMAIN, names it
knows asked for another type get NODATA, each with an SOA in the authority
section so that resolvers cache negative answers for ``negative_ttl``. CNAMEs
are followed within the data and ``*.parent`` wildcards are expanded
(RFC 4592, simplified: no closest-encloser rules).

Records are ``(TYPE, VALUE)`` or ``(TYPE, VALUE, TTL)``. VALUE is zone-file
rdata text (``"10 mx.example.test."``) except for TXT, where a ``str`` is one
string (split into 255-octet pieces) and a ``list`` or ``tuple`` of ``str`` or
``bytes`` gives the strings one by one; an empty TXT is sent as one empty
string, the only form dnspython can read. Names are handled as bytes, so they
may hold spaces, ``%`` or other octets (SPF macro tests need them); a whole
zone may also be given as zone-file text.

Faults are injected per name (and optionally per type) with :meth:`fail`:
``"servfail"``, ``"refused"``, ``"drop"`` (never answer, so the client times
out) and ``"truncate"`` (UDP answers have TC set and no records, so the client
retries over TCP, which answers in full). Every query is recorded in
:attr:`DnsServer.queries` as ``(name, type, transport)``.

The server runs in one thread with a selector, so it does not depend on the
test's event loop and works for sync and async tests alike.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from dnslib import CLASS, QTYPE, RCODE, RDMAP, RR, SOA, TXT, DNSLabel, DNSRecord

Label = tuple[bytes, ...]
RecordSpec = tuple[str, Any] | tuple[str, Any, int]
Zones = Mapping[str, Sequence[RecordSpec]] | Mapping[bytes, Sequence[RecordSpec]] | str

FAULTS = ("servfail", "refused", "drop", "truncate")
_UDP_LIMIT = 512
_MAX_CNAME_CHAIN = 8


def _label(name: str | bytes) -> Label:
    """A name as lower-case label octets; str is encoded as UTF-8, never IDNA."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    raw = raw.rstrip(b".")
    return tuple(part.lower() for part in raw.split(b".")) if raw else ()


def _txt_strings(value: Any) -> list[bytes]:
    if isinstance(value, list | tuple):
        strings = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in value]
    else:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        strings = [raw[i : i + 255] for i in range(0, len(raw), 255)]
    return strings or [b""]


def make_rr(name: str | bytes, rtype: str, value: Any, ttl: int = 300) -> RR:
    """Build one dnslib resource record from the test's ``(type, value, ttl)``."""
    rtype = rtype.upper()
    owner = DNSLabel(list(_label(name)))
    if rtype == "TXT":
        rdata = TXT(_txt_strings(value))
    else:
        rdata = RDMAP.get(rtype).fromZone(str(value).split())
    return RR(owner, getattr(QTYPE, rtype), CLASS.IN, ttl, rdata)


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)


class DnsServer:
    """A threaded authoritative DNS server on 127.0.0.1, UDP and TCP on one free port."""

    def __init__(self, zones: Zones | None = None, *, negative_ttl: int = 60) -> None:
        self.negative_ttl = negative_ttl
        self.records: dict[Label, list[RR]] = {}
        self.faults: dict[tuple[Label, str | None], str] = {}
        self.queries: list[tuple[str, str, str]] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._selector: selectors.DefaultSelector | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._lock = threading.Lock()
        if zones is not None:
            self.add_zones(zones)

    # --- Data ---------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """This server as a ``make_resolver`` entry: ``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    def add_zones(self, zones: Zones) -> None:
        """Add records from a mapping of name to record specs, or zone-file text."""
        with self._lock:
            if isinstance(zones, str):
                for rr in RR.fromZone(zones):
                    self.records.setdefault(tuple(p.lower() for p in rr.rname.label), []).append(
                        rr
                    )
                return
            for name, specs in zones.items():
                bucket = self.records.setdefault(_label(name), [])
                for spec in specs:
                    bucket.append(make_rr(name, *spec))

    def add(self, name: str | bytes, rtype: str, value: Any, ttl: int = 300) -> None:
        """Add one record."""
        with self._lock:
            self.records.setdefault(_label(name), []).append(make_rr(name, rtype, value, ttl))

    def remove(self, name: str | bytes) -> None:
        """Forget every record of ``name`` (it becomes NXDOMAIN)."""
        with self._lock:
            self.records.pop(_label(name), None)

    def fail(self, name: str | bytes, fault: str, rtype: str | None = None) -> None:
        """Make queries for ``name`` (of ``rtype``, or any type) fail with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"fault {fault!r} is not one of {', '.join(FAULTS)}")
        with self._lock:
            self.faults[(_label(name), rtype.upper() if rtype else None)] = fault

    def heal(self, name: str | bytes) -> None:
        """Remove every fault injected for ``name``."""
        label = _label(name)
        with self._lock:
            for key in [key for key in self.faults if key[0] == label]:
                del self.faults[key]

    def queries_for(self, name: str, rtype: str | None = None) -> list[tuple[str, str, str]]:
        """The recorded queries for ``name`` (and ``rtype``), in arrival order."""
        wanted = name.rstrip(".").lower()
        return [
            query
            for query in self.queries
            if query[0] == wanted and (rtype is None or query[1] == rtype)
        ]

    # --- Lifecycle ----------------------------------------------------------------

    def start(self) -> DnsServer:
        """Bind UDP and TCP on one free port of 127.0.0.1 and serve in a thread."""
        udp, tcp = self._bind()
        self.port = udp.getsockname()[1]
        selector = selectors.DefaultSelector()
        selector.register(udp, selectors.EVENT_READ, "udp")
        selector.register(tcp, selectors.EVENT_READ, "listen")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._selector = selector
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket."""
        if self._thread is None:
            self._wake_r.close()
            self._wake_w.close()
            return
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(5)
        self._thread = None
        assert self._selector is not None
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        self._wake_w.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        raise RuntimeError("no free port for both UDP and TCP on 127.0.0.1")

    # --- Serving ------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._selector is not None
        selector = self._selector
        while not self._stopping:
            for key, _ in selector.select():
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data == "wake":
                    return
                if key.data == "udp":
                    self._on_udp(sock)
                elif key.data == "listen":
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = sock.accept()
                        conn.setblocking(False)
                        selector.register(conn, selectors.EVENT_READ, _Connection(conn))
                else:
                    self._on_tcp(key.data)

    def _on_udp(self, sock: socket.socket) -> None:
        try:
            data, peer = sock.recvfrom(65535)
        except (BlockingIOError, ConnectionError):
            return
        reply = self._answer(data, "udp")
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)

    def _on_tcp(self, conn: _Connection) -> None:
        assert self._selector is not None
        try:
            chunk = conn.sock.recv(65535)
        except BlockingIOError:
            return
        except ConnectionError:
            chunk = b""
        if not chunk:
            self._selector.unregister(conn.sock)
            conn.sock.close()
            return

        conn.buffer += chunk
        while len(conn.buffer) >= 2:
            (size,) = struct.unpack("!H", conn.buffer[:2])
            if len(conn.buffer) < 2 + size:
                break
            message = bytes(conn.buffer[2 : 2 + size])
            del conn.buffer[: 2 + size]
            reply = self._answer(message, "tcp")
            if reply is not None:
                conn.sock.setblocking(True)
                with contextlib.suppress(OSError):
                    conn.sock.sendall(struct.pack("!H", len(reply)) + reply)
                conn.sock.setblocking(False)

    def _answer(self, data: bytes, transport: str) -> bytes | None:
        """The wire reply to one query, or None to stay silent."""
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return None
        question = request.q
        qname: Label = tuple(part.lower() for part in question.qname.label)
        qtype = QTYPE.get(question.qtype)
        self.queries.append((b".".join(qname).decode("utf-8", "replace"), qtype, transport))

        reply = request.reply()
        with self._lock:
            fault = self.faults.get((qname, qtype)) or self.faults.get((qname, None))
            if fault == "drop":
                return None
            if fault == "servfail":
                reply.header.rcode = RCODE.SERVFAIL
                return bytes(reply.pack())
            if fault == "refused":
                reply.header.rcode = RCODE.REFUSED
                return bytes(reply.pack())
            if fault == "truncate" and transport == "udp":
                reply.header.tc = 1
                return bytes(reply.pack())
            self._resolve(reply, qname, question.qtype)

        wire = bytes(reply.pack())
        limit = max([_UDP_LIMIT] + [rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT])
        if transport == "udp" and len(wire) > limit:
            truncated = request.reply()
            truncated.header.tc = 1
            return bytes(truncated.pack())
        return wire

    def _resolve(self, reply: DNSRecord, qname: Label, qtype: int) -> None:
        """Fill ``reply`` with answers, following CNAMEs, or make it NXDOMAIN/NODATA."""
        name = qname
        for _ in range(_MAX_CNAME_CHAIN):
            records = self._records_at(name)
            if records is None:
                if name == qname:
                    reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(self._soa(qname))
                return
            matching = [rr for rr in records if rr.rtype == qtype]
            cnames = [rr for rr in records if rr.rtype == QTYPE.CNAME]
            if matching or qtype == QTYPE.ANY:
                for rr in matching or records:
                    reply.add_answer(self._owned(rr, name))
                return
            if cnames and qtype != QTYPE.CNAME:
                reply.add_answer(self._owned(cnames[0], name))
                name = tuple(part.lower() for part in cnames[0].rdata.label.label)
                continue
            reply.add_auth(self._soa(qname))
            return

    def _records_at(self, name: Label) -> list[RR] | None:
        """Records of ``name``; [] for an empty non-terminal; None if it does not exist."""
        if name in self.records:
            return self.records[name]
        if any(len(known) > len(name) and known[-len(name) :] == name for known in self.records):
            return []
        for depth in range(1, len(name)):
            wildcard = (b"*", *name[depth:])
            if wildcard in self.records:
                return self.records[wildcard]
        return None

    @staticmethod
    def _owned(rr: RR, name: Label) -> RR:
        """``rr`` with ``name`` as owner (wildcard expansion keeps the asked name)."""
        if tuple(part.lower() for part in rr.rname.label) == name:
            return rr
        return RR(DNSLabel(list(name)), rr.rtype, rr.rclass, rr.ttl, rr.rdata)

    def _soa(self, qname: Label) -> RR:
        """The SOA for negative answers: a held SOA above ``qname``, else one at its TLD."""
        for depth in range(len(qname)):
            for rr in self.records.get(qname[depth:], ()):
                if rr.rtype == QTYPE.SOA:
                    return rr
        apex = DNSLabel(list(qname[-1:]))
        soa = SOA("ns.invalid.", "hostmaster.invalid.", (1, 3600, 600, 86400, self.negative_ttl))
        return RR(apex, QTYPE.SOA, CLASS.IN, self.negative_ttl, soa)


@pytest.fixture
def dns_server() -> Iterator[Callable[..., DnsServer]]:
    """A factory of started :class:`DnsServer` instances, all stopped after the test."""
    servers: list[DnsServer] = []

    def start(zones: Zones | None = None, **options: Any) -> DnsServer:
        server = DnsServer(zones, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
