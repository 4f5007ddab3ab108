"""Test endpoints for the real-kernel suite: a listener that reports where a
connection landed and its original destination (SO_ORIGINAL_DST, exactly what a
proxy reads after REDIRECT), and a client that prints the listener's report.

Run as `python3 -c "$(cat probe.py)" serve|connect ...` so that a non-root UID
can run it wherever the checkout lives.
"""
import json
import socket
import struct
import sys
import threading

SO_ORIGINAL_DST = 80  # same number for SOL_IP and SOL_IPV6 (IP6T_SO_ORIGINAL_DST)


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


def serve_tcp(name, family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
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


def serve(args):
    # serve NAME PROTO PORT [PORT...]: listens on every address of both families.
    name, proto, ports = args[0], args[1], [int(p) for p in args[2:]]
    target = serve_tcp if proto == "tcp" else serve_udp
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            threading.Thread(target=target, args=(name, family, host, port), daemon=True).start()
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


if __name__ == "__main__":
    {"serve": serve, "connect": connect}[sys.argv[1]](sys.argv[2:])
