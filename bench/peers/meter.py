#!/usr/bin/env python3
"""bench/peers meters, the same for aulac and Flower (standard library only).

  meter.py proxy LISTEN_PORT_FILE TARGET_PORT OUT.json
      A TCP proxy on a free loopback port (written to LISTEN_PORT_FILE) in front of
      127.0.0.1:TARGET_PORT. Every byte the clients send (uplink) and every byte the
      server sends back (downlink) is counted at the socket, whatever the protocol
      (aulac's gRPC, Flower's HTTP); OUT.json gets the totals and the number of
      connections, rewritten every second and at SIGTERM.

  meter.py rss OUT.json NAME=PID ...
      Samples every 100 ms, for each named root process, the sum of VmRSS over the
      process and all its descendants (Flower's SuperNode and SuperLink start their
      ClientApp and ServerApp as child processes), and keeps the peak; OUT.json gets
      {"NAME": peak_bytes, ...}, rewritten every second and at SIGTERM. A root that has
      exited keeps its peak. "cpu_s" holds each tree's CPU seconds (user + system, the
      processes' and their reaped children's), the largest sum seen.
"""
import json
import os
import signal
import socket
import sys
import threading
import time


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
    os.replace(tmp, path)


# ---- proxy ---------------------------------------------------------------------------

def proxy(port_file, target_port, out):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(256)
    lst.settimeout(0.5)
    counts = {"uplink_bytes": 0, "downlink_bytes": 0, "connections": 0}
    lock = threading.Lock()
    stop = [False]

    def on_term(*_):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def pump(src, dst, key):
        """Copies src to dst until either side closes; counts what passed."""
        try:
            while True:
                data = src.recv(1 << 20)
                if not data:
                    break
                dst.sendall(data)
                with lock:
                    counts[key] += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % lst.getsockname()[1])
    os.replace(tmp, port_file)
    last = 0.0
    while not stop[0]:
        try:
            c, _ = lst.accept()
            c.settimeout(None)
            u = socket.create_connection(("127.0.0.1", target_port))
            for x in (c, u):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with lock:
                counts["connections"] += 1
            threading.Thread(target=pump, args=(c, u, "uplink_bytes"), daemon=True).start()
            threading.Thread(target=pump, args=(u, c, "downlink_bytes"), daemon=True).start()
        except socket.timeout:
            pass
        except OSError as e:
            sys.stderr.write("meter proxy: %s\n" % e)
        now = time.monotonic()
        if now - last >= 1.0:
            with lock:
                write_json(out, counts)
            last = now
    with lock:
        write_json(out, counts)


# ---- peak RSS of process trees ---------------------------------------------------------

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_figures(pid):
    """(VmRSS bytes, CPU seconds of the process and its reaped children), or (0, 0)."""
    rss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        cpu = sum(int(x) for x in fields[11:15]) / TICKS   # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return 0, 0.0
    return rss, cpu


TICKS = os.sysconf("SC_CLK_TCK")


def rss(out, roots):
    peak = {name: 0 for name, _ in roots}
    cpu = {name: 0.0 for name, _ in roots}
    stop = [False]

    def on_term(*_):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    last = 0.0

    def dump():
        write_json(out, dict(peak, cpu_s=cpu))
    while not stop[0]:
        kids = children_map()
        for name, pid in roots:
            tree, todo = [], [pid]
            while todo:
                p = todo.pop()
                tree.append(p)
                todo.extend(kids.get(p, []))
            figs = [proc_figures(p) for p in tree]
            total = sum(f[0] for f in figs)
            if total > peak[name]:
                peak[name] = total
            # a child that exits moves its time into its parent's cutime/cstime once
            # reaped: the tree's sum only grows, up to the last sample before the root ends
            c = sum(f[1] for f in figs)
            if c > cpu[name]:
                cpu[name] = c
        now = time.monotonic()
        if now - last >= 1.0:
            dump()
            last = now
        time.sleep(0.1)
    dump()


def main(argv):
    if len(argv) >= 4 and argv[0] == "proxy":
        proxy(argv[1], int(argv[2]), argv[3])
        return 0
    if len(argv) >= 3 and argv[0] == "rss":
        roots = []
        for a in argv[2:]:
            name, _, pid = a.partition("=")
            roots.append((name, int(pid)))
        rss(argv[1], roots)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    threading.current_thread().name = "meter"
    sys.exit(main(sys.argv[1:]))
