#!/usr/bin/env python3
# cutover_tool.py - the senders, the status watcher and the final IMAP
# check of tests/integration/test_cutover.sh (and contrib/demo.sh).
# Test tooling, never part of mailferry; 127.0.0.1 only; standard library.
#
#   cutover_tool.py send LOG --resolvers P1,P2 --domain D --route HOST=PORT...
#                   --rcpts A,B [--count N] [--every SECS] [--stop FILE]
#                   [--tag T]
#       A sender loop: message i asks resolver i mod len (dig @127.0.0.1 -p
#       P MX D), takes the MX host of lowest preference, sends the message
#       to 127.0.0.1:PORT of its --route (as a sender on the Internet would
#       send to whatever that resolver answers), and appends one line to
#       LOG (see below).  When nothing listens there it asks again and
#       retries every second, up to --retries times, like a sending MTA
#       (each message on its own thread).  Stops after N messages or once
#       FILE exists.
#   cutover_tool.py burst LOG --port PORT --rcpts A,B --count N [--tag T]
#                   [--threads K]
#       N messages to one port at once over K parallel sessions (load);
#       a session that cannot connect waits 0.2 s before the next message.
#   cutover_tool.py once LOG --port PORT --rcpts A,B [--tag T]
#       One message (e.g. a straggler whose sender cached the old MX).
#   LOG lines: "epoch<TAB>tag<TAB>resolver<TAB>mx<TAB>port<TAB>code<TAB>
#       message-id<TAB>body-sha256<TAB>rcpt"; code is the final SMTP reply
#       to DATA (250 = acknowledged), or "refused" (nothing listens),
#       "conn" (the session broke), "nomx", "noroute".
#
#   cutover_tool.py watch OUT --ferryctl PATH --conf FILE --stop FILE
#                   [--every SECS]
#       Poll `ferryctl -c FILE status --json` until FILE exists; append
#       "epoch<TAB>domain<TAB>phase<TAB>verdict" to OUT whenever a domain's
#       phase or verdict changes (and OUT.last holds the last JSON).
#
#   cutover_tool.py check --old PORT --new PORT --users U:P,... --sent LOG
#       The IMAP check, independent of ferry-syncd's own state: fetches
#       every message of every folder of every user on the old (A) and the
#       new (B) server and keys it by (Message-ID, SHA-256 of its body: the
#       part after the header, line ends normalised), since each hop adds
#       its own header lines.  Prints one "FAIL ..." line per problem and
#       a summary; exit 1 on any problem.  Problems:
#         - an acknowledged (250) message not in B exactly once;
#         - a message not acknowledged in B more than once;
#         - a message of A not in B exactly once (history, late mail,
#           the dual-reception copies);
#         - a message in B that nobody sent and A never held.
#       (Folders, flags and INTERNALDATEs of the history: the test compares
#       mailbox_digest.py's lines.)

import argparse
import hashlib
import imaplib
import json
import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time


def body_hash(raw):
    raw = raw.replace(b"\r\n", b"\n")
    parts = raw.split(b"\n\n", 1)
    body = parts[1] if len(parts) == 2 else b""
    return hashlib.sha256(body.rstrip(b"\n")).hexdigest()


_lock = threading.Lock()
_seq = [0]


def make_message(tag, rcpt):
    with _lock:
        _seq[0] += 1
        n = _seq[0]
    mid = "<%s.%d.%d.%06x@sender.example.org>" % (
        tag, os.getpid(), n, random.getrandbits(24))
    body = ("Message %s number %d for %s.\n" % (tag, n, rcpt) +
            "".join("line %d of a cutover test message %08x\n" %
                    (k, random.getrandbits(32))
                    for k in range(random.randint(3, 40))))
    msg = ("From: sender%d@sender.example.org\n" % (n % 7) +
           "To: %s\n" % rcpt +
           "Subject: cutover %s %d\n" % (tag, n) +
           "Message-ID: %s\n" % mid +
           "Date: %s\n" % time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                        time.gmtime()) +
           "\n" + body)
    return mid, msg.encode(), body_hash(msg.encode())


def smtp_send(port, rcpt, data):
    """The final reply code to DATA, 'refused' when nothing listens on the
    port, or 'conn' when the session failed later."""
    try:
        try:
            s = smtplib.SMTP("127.0.0.1", port,
                             local_hostname="client.example.org", timeout=30)
        except ConnectionRefusedError:
            return "refused"
        try:
            s.ehlo()
            code, _ = s.mail("sender@sender.example.org")
            if code != 250:
                return str(code)
            code, _ = s.rcpt(rcpt)
            if code not in (250, 251):
                return str(code)
            try:
                code, _ = s.data(data.replace(b"\n", b"\r\n"))
            except smtplib.SMTPDataError as e:
                code = e.smtp_code
            return str(code)
        finally:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass
    except (OSError, smtplib.SMTPException):
        return "conn"


def log_line(path, fields):
    line = "\t".join(str(f) for f in fields) + "\n"
    with _lock:
        with open(path, "a") as f:
            f.write(line)


def resolve_mx(port, domain):
    try:
        out = subprocess.run(
            ["dig", "+short", "+time=1", "+tries=1", "-p", str(port),
             "@127.0.0.1", domain, "MX"],
            capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    best = None
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0].isdigit():
            pref, host = int(f[0]), f[1].rstrip(".").lower()
            if best is None or pref < best[0]:
                best = (pref, host)
    return best[1] if best else None


def send_one(log, tag, resolver, mx, port, rcpt):
    mid, data, bh = make_message(tag, rcpt)
    code = smtp_send(port, rcpt, data)
    log_line(log, [("%.3f" % time.time()), tag, resolver, mx, port, code,
                   mid, bh, rcpt])
    return code


def send_resolved(a, routes, res, rcpt):
    """Like a sending MTA: ask the resolver, send; when nothing listens on
    that MX, ask again and retry every second (up to --retries times)."""
    mid, data, bh = make_message(a.tag, rcpt)
    for attempt in range(a.retries + 1):
        mx = resolve_mx(res, a.domain)
        if mx is None:
            code, port = "nomx", "-"
        elif mx not in routes:
            code, port = "noroute", "-"
        else:
            port = routes[mx]
            code = smtp_send(int(port), rcpt, data)
        if code != "refused" or (a.stop and os.path.exists(a.stop)):
            break
        time.sleep(1)
    log_line(a.log, ["%.3f" % time.time(), a.tag, res, mx or "-", port, code,
                     mid, bh, rcpt])


def cmd_send(a):
    resolvers = a.resolvers.split(",")
    routes = dict(r.split("=", 1) for r in a.route)
    rcpts = a.rcpts.split(",")
    threads = []
    for i in range(a.count):
        if a.stop and os.path.exists(a.stop):
            break
        t0 = time.time()
        res = resolvers[i % len(resolvers)]
        rcpt = rcpts[i % len(rcpts)]
        # Every message its own sender: one waiting for a dead MX does
        # not hold up the others.
        t = threading.Thread(target=send_resolved, args=(a, routes, res, rcpt))
        t.start()
        threads.append(t)
        time.sleep(max(0.0, a.every - (time.time() - t0)))
    for t in threads:
        t.join()


def cmd_burst(a):
    rcpts = a.rcpts.split(",")
    todo = list(range(a.count))

    def worker():
        while True:
            with _lock:
                if not todo:
                    return
                i = todo.pop()
            if send_one(a.log, a.tag, "-", "-", a.port,
                        rcpts[i % len(rcpts)]) in ("conn", "refused"):
                time.sleep(0.2)	# the server is down: a moment
    ts = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def cmd_once(a):
    code = send_one(a.log, a.tag, "-", "-", a.port, a.rcpts.split(",")[0])
    print(code)
    return 0 if code == "250" else 1


def cmd_watch(a):
    seen = {}
    while not os.path.exists(a.stop):
        t0 = time.time()
        try:
            p = subprocess.run([a.ferryctl, "-c", a.conf, "status", "--json"],
                               capture_output=True, text=True, timeout=20)
            j = json.loads(p.stdout)
            with open(a.out + ".last.tmp", "w") as f:
                f.write(p.stdout)
            os.rename(a.out + ".last.tmp", a.out + ".last")
            for d in j.get("domains", []):
                k = (d.get("phase"), d.get("verdict"))
                if seen.get(d.get("domain")) != k:
                    seen[d.get("domain")] = k
                    log_line(a.out, ["%.3f" % t0, d.get("domain"), k[0], k[1]])
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        time.sleep(max(0.0, a.every - (time.time() - t0)))


def fetch_all(port, user, pw):
    """[(folder, message-id, body hash, raw)] of every message."""
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(user, pw)
    typ, data = c.list('""', '"*"')
    folders = []
    sep = "."
    for item in data:
        if not item:
            continue
        m = re.match(rb'\((.*?)\) (NIL|"(.)"|"\\(.)") (.*)$', item)
        if not m or b"\\Noselect" in m.group(1) or b"\\NonExistent" in m.group(1):
            continue
        s = m.group(3) or m.group(4)
        if s:
            sep = s.decode()
        name = m.group(5)
        if name.startswith(b'"'):
            name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        folders.append(name.decode("ascii"))
    out = []
    for f in folders:
        typ, _ = c.select('"%s"' % f.replace("\\", "\\\\").replace('"', '\\"'),
                          readonly=True)
        if typ != "OK":
            raise SystemExit("check: EXAMINE %s failed" % f)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        for part in data:
            if not isinstance(part, tuple):
                continue
            raw = part[1]
            mid = re.search(rb"(?im)^message-id:[ \t]*(.*?)\r?$",
                            raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0])
            out.append((f.replace(sep, "/") if f != "INBOX" else f,
                        mid.group(1).decode("utf-8", "replace") if mid else "-",
                        body_hash(raw)))
    c.logout()
    return out


def cmd_check(a):
    users = [u.split(":", 1) for u in a.users.split(",")]
    olds, news = [], []
    for u, p in users:
        olds += [(u,) + m for m in fetch_all(a.old, u, p)]
        news += [(u,) + m for m in fetch_all(a.new, u, p)]
    nkey, nmid = {}, {}
    for u, f, mid, bh in news:
        nkey[(mid, bh)] = nkey.get((mid, bh), 0) + 1
        nmid[mid] = nmid.get(mid, 0) + 1
    fails = []
    sent = [l.rstrip("\n").split("\t") for l in open(a.sent) if l.strip()]
    acked = [s for s in sent if s[5] == "250"]
    known = set()
    for s in sent:
        mid, bh = s[6], s[7]
        known.add(mid)
        if s[5] == "250":
            if nkey.get((mid, bh), 0) != 1 or nmid.get(mid, 0) != 1:
                fails.append("FAIL acknowledged %s (%s via %s:%s at %s) is in B "
                             "%d time(s) (%d with its body)" % (
                                 mid, s[1], s[3], s[4], s[0], nmid.get(mid, 0),
                                 nkey.get((mid, bh), 0)))
        elif nmid.get(mid, 0) > 1:
            fails.append("FAIL unacknowledged %s (code %s) is in B %d times" %
                         (mid, s[5], nmid[mid]))
    okeys = set()
    for u, f, mid, bh in olds:
        okeys.add((mid, bh))
        known.add(mid)
    for mid, bh in sorted(okeys):
        if nkey.get((mid, bh), 0) != 1:
            fails.append("FAIL %s of the old host is in B %d time(s)" %
                         (mid, nkey.get((mid, bh), 0)))
    for mid in sorted(nmid):
        if mid not in known:
            fails.append("FAIL %s in B: nobody sent it, A never held it" % mid)
    for l in fails[:30]:
        print(l)
    if len(fails) > 30:
        print("FAIL ... and %d more" % (len(fails) - 30))
    print("sent %d, acknowledged %d; old host %d messages, new host %d; "
          "%d problem(s)" % (len(sent), len(acked), len(olds), len(news),
                             len(fails)))
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("log")
    p.add_argument("--resolvers", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--route", action="append", default=[])
    p.add_argument("--rcpts", required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--every", type=float, default=0.3)
    p.add_argument("--stop")
    p.add_argument("--tag", default="loop")
    p.add_argument("--retries", type=int, default=30)
    p = sub.add_parser("burst")
    p.add_argument("log")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rcpts", required=True)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--threads", type=int, default=5)
    p.add_argument("--tag", default="burst")
    p = sub.add_parser("once")
    p.add_argument("log")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rcpts", required=True)
    p.add_argument("--tag", default="once")
    p = sub.add_parser("watch")
    p.add_argument("out")
    p.add_argument("--ferryctl", required=True)
    p.add_argument("--conf", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--every", type=float, default=0.5)
    p = sub.add_parser("check")
    p.add_argument("--old", type=int, required=True)
    p.add_argument("--new", type=int, required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--sent", required=True)
    a = ap.parse_args()
    return {"send": cmd_send, "burst": cmd_burst, "once": cmd_once,
            "watch": cmd_watch, "check": cmd_check}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
