#!/usr/bin/env python3
"""bench/strace_summary.py - one line per traced run of bench/relay.sh

usage: strace_summary.py FILE N

FILE is the output of "strace -f -C -y -o FILE -p ..." (trace lines, then
the -C summary table); N the number of messages of the run.  Prints, per
message: system calls, fsync + fdatasync (+ sync_file_range, msync), the
writes to files (count and bytes per call), the reads from files, the
socket reads and writes, and the three most frequent calls.
"""
import re
import sys

path, n = sys.argv[1], int(sys.argv[2])

LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
RET = re.compile(r"\)\s+=\s+(-?\d+)")
FD = re.compile(r"^(\d+)<([^>]*)>")

SYNCS = {"fsync", "fdatasync", "sync_file_range", "msync", "syncfs"}
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile",
          "splice", "copy_file_range"}
READS = {"read", "pread64", "readv", "preadv", "preadv2"}
SOCK_W = {"sendto", "sendmsg"}
SOCK_R = {"recvfrom", "recvmsg"}

counts = {}
syncs = 0
fw = fr = sw = sr = 0
fw_bytes = fr_bytes = sw_bytes = sr_bytes = 0
pending = {}


def is_sock(target):
    return target.startswith(("socket:", "TCP", "UDP", "UNIX", "TCPv6",
                              "pipe:", "anon_inode:"))


def done(name, args, ret):
    global syncs, fw, fr, sw, sr, fw_bytes, fr_bytes, sw_bytes, sr_bytes
    counts[name] = counts.get(name, 0) + 1
    if name in SYNCS:
        syncs += 1
    if ret is None or ret < 0:
        return
    m = FD.match(args)
    target = m.group(2) if m else ""
    if name == "sendfile" or name == "splice":
        # the out fd is the first: a socket for the forward
        target = m.group(2) if m else ""
    sock = is_sock(target) or name in SOCK_W or name in SOCK_R
    if name in WRITES or name in SOCK_W:
        if sock:
            sw += 1
            sw_bytes += ret
        else:
            fw += 1
            fw_bytes += ret
    elif name in READS or name in SOCK_R:
        if sock:
            sr += 1
            sr_bytes += ret
        else:
            fr += 1
            fr_bytes += ret


with open(path, errors="replace") as f:
    for raw in f:
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, rest = m.group(1), m.group(2)
        r = RESUMED.match(rest)
        if r:
            name = r.group(1)
            args = pending.pop(pid, ("", ""))[1] + r.group(2)
        else:
            c = CALL.match(rest)
            if not c:
                continue
            name, args = c.group(1), c.group(2)
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (name, args)
                continue
        rm = RET.search(args)
        done(name, args, int(rm.group(1)) if rm else None)

total = sum(counts.values())
top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]


def per(x):
    return x / n if n else 0


def avg(b, k):
    return ("%.0f" % (b / k)) if k else "-"


print("syscalls/msg %.1f  fsync/msg %.2f  file writes/msg %.1f (avg %s B)  "
      "file reads/msg %.1f (avg %s B)  socket reads/msg %.1f (avg %s B)  "
      "socket writes/msg %.1f (avg %s B)  top: %s" % (
          per(total), per(syncs), per(fw), avg(fw_bytes, fw), per(fr),
          avg(fr_bytes, fr), per(sr), avg(sr_bytes, sr), per(sw),
          avg(sw_bytes, sw),
          ", ".join("%s %.1f" % (k, per(v)) for k, v in top)))
