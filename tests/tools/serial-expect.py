#!/usr/bin/env python3
"""serial-expect.py - drive a console over a QEMU serial socket, expect-style.

usage: serial-expect.py --socket PATH --log FILE SCRIPT

Connects to the UNIX socket of `-chardev socket,path=PATH,server=on` (retrying while QEMU
starts), then runs SCRIPT line by line:
  expect LABEL SECONDS REGEX   wait until REGEX (Python re) matches the output received since
                               the previous match; prints "ok LABEL", or "fail LABEL" and the
                               output's tail, and exits 1
  send TEXT                    type TEXT and Enter (a CR, as a serial terminal sends); "send"
                               alone is just Enter
  sendraw TEXT                 type TEXT with Python escapes (\\x03 is Ctrl-C), no Enter
  # comment, blank lines       ignored
Everything received is appended to the log as it arrives."""
import argparse
import re
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--connect-timeout", type=float, default=30)
    ap.add_argument("script")
    a = ap.parse_args()

    steps = []
    with open(a.script) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            steps.append(line)

    deadline = time.time() + a.connect_timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            sock.connect(a.socket)
            break
        except OSError:
            if time.time() > deadline:
                print("fail connect: no socket at %s" % a.socket)
                return 1
            time.sleep(0.1)
    log = open(a.log, "ab", buffering=0)
    buf = ""  # text received since the last match

    def receive(until):
        nonlocal buf
        sock.settimeout(max(0.05, min(0.5, until - time.time())))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return True
        if not data:
            return False
        log.write(data)
        buf += data.decode("utf-8", "replace")
        return True

    for step in steps:
        cmd, _, rest = step.partition(" ")
        if cmd == "expect":
            label, seconds, regex = rest.split(" ", 2)
            pat = re.compile(regex)
            until = time.time() + float(seconds)
            alive = True
            while True:
                m = pat.search(buf)
                if m:
                    buf = buf[m.end():]
                    print("ok %s" % label, flush=True)
                    break
                if time.time() > until or not alive:
                    print("fail %s: no /%s/ within %s s%s; output since the last match (tail):"
                          % (label, regex, seconds, "" if alive else " (connection closed)"), flush=True)
                    for l in buf[-1500:].replace("\r", "").splitlines():
                        print("    " + l)
                    return 1
                alive = receive(until)
        elif cmd == "send":
            sock.sendall(rest.encode() + b"\r")
        elif cmd == "sendraw":
            sock.sendall(rest.encode().decode("unicode_escape").encode("latin-1"))
        else:
            print("fail script: unknown step %r" % step)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
