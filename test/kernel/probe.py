"""Test endpoints for the real-kernel suite: a listener that reports where a
connection landed and its original destination (SO_ORIGINAL_DST, exactly what a
proxy reads after REDIRECT; with TPROXY the socket's own address), and a client
that prints the listener's report; a tiny DNS server and client; a sender of a
packet that conntrack finds INVALID.

Run as `python3 -c "$(cat probe.py)" serve|connect ...` so that a non-root UID
can run it wherever the checkout lives.
"""
import json
import socket
import struct
import sys
import threading

SO_ORIGINAL_DST = 80  # same number for SOL_IP and SOL_IPV6 (IP6T_SO_ORIGINAL_DST)
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
IPV6_CHECKSUM = 7


def original_destination(conn, family):
    try:
        if family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, addr = struct.unpack_from("!2xH4s", raw)
            return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr), port)
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port, addr = struct.unpack_from("!2xH4x16s", raw)
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), port)
    except OSError:
        return None  # no NAT on this connection


def endpoint(sockaddr, family):
    if family == socket.AF_INET:
        return "%s:%d" % sockaddr[:2]
    return "[%s]:%d" % sockaddr[:2]


def serve_tcp(name, family, host, port, transparent=False):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if transparent:
        # What a TPROXY proxy sets: accept connections to addresses that are not its own.
        if family == socket.AF_INET:
            s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    s.bind((host, port))
    s.listen(64)
    while True:
        conn, peer = s.accept()
        report = {
            "server": name,
            "local": endpoint(conn.getsockname(), family),
            "peer": endpoint(peer, family),
            "original": original_destination(conn, family),
        }
        conn.sendall((json.dumps(report) + "\n").encode())
        conn.close()


def serve_udp(name, family, host, port):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    while True:
        _, peer = s.recvfrom(2048)
        report = {"server": name, "local": endpoint(s.getsockname(), family), "peer": endpoint(peer, family)}
        s.sendto((json.dumps(report) + "\n").encode(), peer)


def dns_answer(query, address):
    """A response to a DNS query: one A record with `address` for an A question, none otherwise."""
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    qtype = struct.unpack_from("!H", query, end + 1)[0]
    answers = b""
    if qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(address)
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def serve_dns(name, family, host, port, address):
    # Answers from the address each query was sent to, as a resolver on a host with
    # several addresses must (a wildcard UDP socket would pick its own source).
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        level, kind = socket.IPPROTO_IPV6, IPV6_PKTINFO
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        level, kind = socket.IPPROTO_IP, IP_PKTINFO
    s.bind((host, port))
    while True:
        query, ancillary, _, peer = s.recvmsg(2048, 256)
        info = [data for (lvl, typ, data) in ancillary if lvl == level and typ == kind]
        if info and family == socket.AF_INET:
            _, _, to = struct.unpack("I4s4s", info[0][:12])
            reply = [(level, kind, struct.pack("I4s4s", 0, to, bytes(4)))]
        elif info:
            to, _ = struct.unpack("16sI", info[0][:20])
            reply = [(level, kind, struct.pack("16sI", to, 0))]
        else:
            reply = []
        s.sendmsg([dns_answer(query, address)], reply, 0, peer)


def serve(args):
    # serve NAME tcp|udp|tcp-transparent PORT [PORT...]: listens on every address of both families.
    # serve NAME dns|dns-lo ADDRESS PORT [PORT...]: answers every A question with ADDRESS;
    # dns-lo listens on loopback only, as a proxy's DNS server does (a wildcard UDP
    # socket would answer a redirected query from the pod IP, which NAT cannot match).
    name, proto = args[0], args[1]
    answer = args[2] if proto.startswith("dns") else None
    ports = [int(p) for p in args[3 if answer else 2:]]
    hosts = ("127.0.0.1", "::1") if proto == "dns-lo" else ("0.0.0.0", "::")
    for port in ports:
        for family, host in zip((socket.AF_INET, socket.AF_INET6), hosts):
            if answer:
                target, extra = serve_dns, (answer,)
            elif proto == "udp":
                target, extra = serve_udp, ()
            else:
                target, extra = serve_tcp, (proto == "tcp-transparent",)
            threading.Thread(target=target, args=(name, family, host, port) + extra, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)


def connect(args):
    # connect PROTO HOST PORT [SOURCE]
    proto, host, port = args[0], args[1], int(args[2])
    source = args[3] if len(args) > 3 else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    s.settimeout(3)
    try:
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        if proto == "udp":
            s.send(b"ping")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip() or json.dumps({"error": "closed without a report"}))
    except OSError as e:
        print(json.dumps({"error": "%s" % e}))


def resolve(args):
    # resolve NAME: through the C library, so through the namespace's /etc/resolv.conf.
    try:
        infos = socket.getaddrinfo(args[0], None, socket.AF_INET, socket.SOCK_STREAM)
        print(json.dumps({"addresses": sorted({info[4][0] for info in infos})}))
    except OSError as e:
        print(json.dumps({"error": "%s" % e}))


def query(args):
    # query HOST NAME: one UDP DNS question (type A) to HOST:53, straight from this process.
    host, name = args[0], args[1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    packet = struct.pack("!HHHHHH", 0x4d49, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.connect((host, 53))
        s.send(packet)
        reply = s.recv(2048)
        count = struct.unpack_from("!H", reply, 6)[0]
        addresses = [socket.inet_ntoa(reply[-4:])] if count else []
        print(json.dumps({"addresses": addresses}))
    except OSError as e:
        print(json.dumps({"error": "%s" % e}))


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def invalid(args):
    # invalid SOURCE HOST PORT: one TCP segment with SYN and FIN set, which conntrack calls INVALID.
    source, host, port = args[0], args[1], int(args[2])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    segment = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x03, 65535, 0, 0)
    s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    if family == socket.AF_INET:
        pseudo = socket.inet_aton(source) + socket.inet_aton(host) + struct.pack("!BBH", 0, 6, len(segment))
        segment = segment[:16] + struct.pack("!H", checksum(pseudo + segment)) + segment[18:]
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 16)  # the kernel fills it in
    s.bind((source, 0))
    s.sendto(segment, (host, 0))
    print(json.dumps({"sent": 1}))


if __name__ == "__main__":
    commands = {"serve": serve, "connect": connect, "resolve": resolve, "query": query, "invalid": invalid}
    commands[sys.argv[1]](sys.argv[2:])
