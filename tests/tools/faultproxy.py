#!/usr/bin/env python3
"""faultproxy.py - a TCP proxy on 127.0.0.1 that breaks connections on purpose, for the
network-failure cases of the destination tests.

Usage: faultproxy.py (--listen PORT | --port-file FILE) --target PORT
                     [--cut-after BYTES] [--cuts N] [--log FILE] [--lifetime SECONDS]

Forwards every connection to 127.0.0.1:TARGET. The first N connections (default 1; -1 for
every one) that carry more than BYTES bytes from the client are reset (RST, like a dropped
link or a crashed peer) once BYTES have passed; short requests (logins, HEAD, ...) pass
untouched and do not count. Prints "ready" on stdout once listening; with --port-file the
port chosen is written there. Logs one line per cut to --log; exits after --lifetime
seconds (default 600) so a failed test never leaves it behind.
"""
import argparse
import socket
import struct
import threading
import time


def reset(*socks):
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass


class Budget:
    """How many more connections may be cut (negative: unlimited)."""

    def __init__(self, cuts):
        self.left = cuts
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.left == 0:
                return False
            self.left -= 1
            return True


def pump(src, dst, limit, on_limit):
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            if limit is not None and sent + len(data) > limit and on_limit():
                dst.sendall(data[: limit - sent])
                return
            dst.sendall(data)
            sent += len(data)
    except OSError:
        reset(src, dst)


def serve(client, target, cut_after, budget, log):
    try:
        server = socket.create_connection(("127.0.0.1", target), timeout=10)
        server.settimeout(None)
    except OSError:
        reset(client)
        return
    # No Nagle: SSH's small packets would otherwise wait for delayed ACKs (0.3 MB/s).
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def cut():
        if not budget.take():
            return False
        if log:
            with open(log, "a") as f:
                f.write("cut after %d bytes\n" % cut_after)
        reset(client, server)
        return True

    threading.Thread(target=pump, args=(server, client, None, None), daemon=True).start()
    pump(client, server, cut_after, cut)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--cut-after", type=int, default=None)
    ap.add_argument("--cuts", type=int, default=1)
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=int, default=600)
    a = ap.parse_args()
    budget = Budget(a.cuts if a.cut_after is not None else 0)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.listen))
    srv.listen(64)
    srv.settimeout(1)
    if a.port_file:
        with open(a.port_file, "w") as f:
            f.write("%d\n" % srv.getsockname()[1])
    print("ready", flush=True)
    deadline = time.monotonic() + a.lifetime
    while time.monotonic() < deadline:
        try:
            client, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(client, a.target, a.cut_after, budget, a.log), daemon=True).start()


if __name__ == "__main__":
    main()
