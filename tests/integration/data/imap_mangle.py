#!/usr/bin/env python3
# imap_mangle.py - a proxy in front of a real IMAP server that makes its
# answers wrong in the ways real servers are seen to be, for syncd tests:
#
#   imap_mangle.py PORTFILE SERVER_PORT LOG RULE...
#
# Listens on 127.0.0.1 (any port, written to PORTFILE) and relays every
# connection to 127.0.0.1:SERVER_PORT.  The server's stream is read a
# response at a time (a line, and for each {n} literal its n bytes, kept
# as they are), so rules touch the response text, never a literal.  The
# client's commands are watched for the mailbox last SELECTed/EXAMINEd.
# COMPRESS is removed from every capability list (the proxy reads text).
# Rules:
#   badlist=NAME        a "* LIST" of mailbox NAME loses its delimiter,
#                       so it no longer parses as a LIST entry
#   size=MAILBOX:UID    in MAILBOX, a FETCH of UID carrying RFC822.SIZE
#                       says one byte more than the message has
#   dupuid=MAILBOX:UID  in MAILBOX, a FETCH response of UID carrying
#                       RFC822.SIZE is sent twice
#   interleave=MAILBOX  in MAILBOX, when a flag look (UID FETCH ... (UID
#                       FLAGS) (CHANGEDSINCE n)) is in flight as the
#                       tagged OK of a FETCH that answered with
#                       INTERNALDATE arrives, that OK is held back until
#                       the flag look's own tagged answer: the flag look's
#                       untagged FETCHes reach the client while the first
#                       FETCH is still open, as a server running both at
#                       once may send them
# Each rule applied is logged to LOG, one line each time.
import os
import re
import socket
import sys
import threading

portfile, sport, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rules = [r.split("=", 1) for r in sys.argv[4:]]
lock = threading.Lock()


def log(s):
    with lock, open(logf, "a") as f:
        f.write(s + "\n")


def read_response(f):
    """One response: its text parts (lines) and literals, in order."""
    parts = []
    while True:
        line = f.readline()
        if not line:
            return None if not parts else parts
        parts.append(("text", line))
        m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
        if not m:
            return parts
        n = int(m.group(1))
        data = f.read(n)
        parts.append(("lit", data))
        if len(data) < n:
            return parts


def mangle(parts, st):
    first = parts[0][1]
    first = re.sub(rb" COMPRESS=DEFLATE", b"", first)
    parts[0] = ("text", first)
    out = [parts]
    for kind, arg in rules:
        if kind == "badlist":
            pat = rb'^(\* LIST \([^)]*\)) (?:"."|NIL) ("?' + \
                re.escape(arg.encode()) + rb'"?)\r\n$'
            m = re.match(pat, first)
            if m:
                parts[0] = ("text", m.group(1) + b" " + m.group(2) + b"\r\n")
                log("badlist %s" % arg)
            continue
        if kind == "interleave":
            continue        # interleave(), after the rest
        mbox, uid = arg.rsplit(":", 1)
        if st.get("mbox") != mbox or b"RFC822.SIZE" not in first or \
                not re.match(rb"^\* \d+ FETCH ", first) or \
                not re.search(rb"[( ]UID " + uid.encode() + rb"[ )]", first):
            continue
        if kind == "size":
            parts[0] = ("text", re.sub(
                rb"RFC822\.SIZE (\d+)",
                lambda m: b"RFC822.SIZE " + str(int(m.group(1)) + 1).encode(),
                first))
            log("size %s" % arg)
        elif kind == "dupuid":
            out.append(list(parts))
            log("dupuid %s" % arg)
    return out


def client_side(c, s, st):
    f = c.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                break
            m = re.match(rb'^\S+ (?:UID )?(?:SELECT|EXAMINE) "?([^"\r\n]*)"?',
                         line, re.I)
            if m:
                st["mbox"] = m.group(1).decode()
            m = re.match(rb'^(\S+) UID FETCH \S+ \(UID FLAGS\) \(CHANGEDSINCE ',
                         line)
            if m:
                st.setdefault("flag_tags", set()).add(m.group(1))
            s.sendall(line)
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m:
                s.sendall(f.read(int(m.group(1))))
    except OSError:
        pass
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def interleave(parts, st):
    """The interleave rule: the responses to send now (maybe none)."""
    boxes = [arg for kind, arg in rules if kind == "interleave"]
    first = parts[0][1]
    m = re.match(rb"^(\S+) (OK|NO|BAD) ", first)
    if not boxes or (m is None and not first.startswith(b"* ")):
        return [parts]
    if m is None:
        if re.match(rb"^\* \d+ FETCH .*INTERNALDATE", first):
            st["saw_meta"] = True
        return [parts]
    tag, flags = m.group(1), st.setdefault("flag_tags", set())
    meta, st["saw_meta"] = st.get("saw_meta", False), False
    if tag in flags:
        flags.discard(tag)
        held, st["held"] = st.get("held"), None
        return ([held] if held else []) + [parts]
    if meta and flags and st.get("mbox") in boxes and not st.get("held"):
        st["held"] = parts
        log("interleave %s" % st.get("mbox"))
        return []
    return [parts]


def server_side(c, s, st):
    f = s.makefile("rb")
    try:
        while True:
            parts = read_response(f)
            if parts is None:
                break
            for resp in mangle(parts, st):
                for r in interleave(resp, st):
                    c.sendall(b"".join(p[1] for p in r))
    except OSError:
        pass
    finally:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(c):
    s = socket.create_connection(("127.0.0.1", sport))
    st = {}
    t = threading.Thread(target=client_side, args=(c, s, st), daemon=True)
    t.start()
    server_side(c, s, st)
    t.join(5)
    for x in (c, s):
        x.close()


l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(32)
with open(portfile + ".tmp", "w") as f:
    f.write(str(l.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
