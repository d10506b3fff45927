#!/usr/bin/env python3
"""faultproxy.py - a TCP proxy on 127.0.0.1 that breaks connections on purpose.

Usage: faultproxy.py LISTEN_PORT TARGET_PORT [--cut-after BYTES] [--cuts N] [--log FILE]

Forwards every connection to 127.0.0.1:TARGET_PORT. The first N connections (default 1)
that carry more than BYTES bytes from the client are reset (RST) once BYTES have passed:
a network drop in the middle of an upload. Later connections pass untouched. Prints
"ready" on stdout once listening; logs one line per cut to --log.
"""
import argparse
import socket
import struct
import threading

def pump(src, dst, budget, on_cut):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if budget is not None:
                if len(data) >= budget[0]:
                    dst.sendall(data[:budget[0]])
                    on_cut()
                    return
                budget[0] -= len(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("target", type=int)
    ap.add_argument("--cut-after", type=int, default=None)
    ap.add_argument("--cuts", type=int, default=1)
    ap.add_argument("--log", default=None)
    a = ap.parse_args()
    lock = threading.Lock()
    left = [a.cuts if a.cut_after is not None else 0]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.listen))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = srv.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", a.target))
        except OSError:
            reset(client)
            continue
        with lock:
            armed = left[0] > 0
        budget = [a.cut_after] if armed else None

        def cut(c=client, u=upstream):
            with lock:
                left[0] -= 1
            if a.log:
                with open(a.log, "a") as f:
                    f.write("cut after %d bytes\n" % a.cut_after)
            reset(c)
            reset(u)

        threading.Thread(target=pump, args=(client, upstream, budget, cut), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, None, lambda: None), daemon=True).start()

if __name__ == "__main__":
    main()
