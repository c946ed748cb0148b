#!/usr/bin/env python3
# imap_tool.py - a tiny IMAP client for the integration tests (lib.sh).
#
# Seeds and inspects test mailboxes on a private Dovecot on 127.0.0.1; it
# is test tooling, never part of mailferry.  Usage:
#   imap_tool.py PORT USER PASS cmd COMMAND...      raw commands, no tag
#   imap_tool.py PORT USER PASS append FOLDER FILE [FLAGS]
#   imap_tool.py PORT USER PASS create FOLDER
#   imap_tool.py PORT USER PASS list
#   imap_tool.py PORT USER PASS count FOLDER
#   imap_tool.py PORT USER PASS flags FOLDER
#   imap_tool.py PORT USER PASS fetch FOLDER UID
#   imap_tool.py PORT USER PASS login
# IMAP_TLS=1 connects with implicit TLS, verified against $TEST_CA for the
# name localhost.  Folder names holding non-ASCII characters are encoded to
# modified UTF-7; ASCII names are sent as given (so mUTF-7 may be passed).
# Exit status: 0 fine, 1 a command answered NO/BAD, 2 connection or login
# failure, 3 usage.

import base64
import os
import re
import socket
import ssl
import sys

TIMEOUT = 20


class ImapError(Exception):
    pass


class Client:
    def __init__(self, port):
        sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        if os.environ.get("IMAP_TLS") == "1":
            ctx = ssl.create_default_context(cafile=os.environ["TEST_CA"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.f = sock.makefile("rwb")
        self.n = 0
        greeting = self.read_response()
        if not greeting[0].startswith(b"* OK"):
            raise ImapError("bad greeting: %r" % greeting[0])

    def read_response(self):
        """One response line, with any literals it holds read in."""
        out = b""
        while True:
            line = self.f.readline()
            if not line:
                raise ImapError("connection closed")
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return [out]
            out += self.f.read(int(m.group(1)))

    def command(self, cmd, literal=None):
        """Send one command; return (untagged lines, tagged line)."""
        self.n += 1
        tag = b"t%d" % self.n
        if literal is not None:
            # LITERAL+ (Dovecot announces it): no continuation round trip.
            self.f.write(tag + b" " + cmd + b" {%d+}\r\n" % len(literal))
            self.f.write(literal + b"\r\n")
        else:
            self.f.write(tag + b" " + cmd + b"\r\n")
        self.f.flush()
        untagged = []
        while True:
            line = self.read_response()[0]
            if line.startswith(tag + b" "):
                return untagged, b"." + line[len(tag):]
            untagged.append(line)

    def check(self, cmd, literal=None):
        untagged, tagged = self.command(cmd, literal)
        if not tagged.startswith(b". OK"):
            raise ImapError(tagged.decode("utf-8", "replace").strip())
        return untagged


def quote(s):
    if isinstance(s, str):
        s = mutf7(s).encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def mutf7(name):
    if all(0x20 <= ord(c) < 0x7F for c in name):
        return name
    out, run = [], []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            enc = base64.b64encode(b).decode().rstrip("=").replace("/", ",")
            out.append("&" + enc + "-")
            run.clear()
    for c in name:
        if 0x20 <= ord(c) < 0x7F:
            flush()
            out.append("&-" if c == "&" else c)
        else:
            run.append(c)
    flush()
    return "".join(out)


def parse_list(line):
    """* LIST (flags) "sep" name -> (flags, sep, name) as str."""
    m = re.match(rb'\* LIST \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.*)\r\n$',
                 line, re.S)
    if not m:
        raise ImapError("cannot parse %r" % line)
    sep = m.group(2)
    sep = b"NIL" if sep == b"NIL" else re.sub(rb"\\(.)", rb"\1", sep[1:-1])
    name = m.group(3)
    lit = re.match(rb"\{\d+\}\r\n(.*)$", name, re.S)
    if lit:
        name = lit.group(1)
    elif name.startswith(b'"'):
        name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
    return m.group(1).decode(), sep.decode(), name.decode()


def main(argv):
    if len(argv) < 5:
        sys.stderr.write("usage: imap_tool.py PORT USER PASS OP [ARG...]\n")
        return 3
    port, user, password, op, args = int(argv[1]), argv[2], argv[3], argv[4], argv[5:]
    try:
        c = Client(port)
        _, tagged = c.command(b"LOGIN " + quote(user.encode()) + b" " +
                              quote(password.encode()))
        if not tagged.startswith(b". OK"):
            sys.stderr.write("login failed: %s\n" % tagged.decode().strip())
            return 2
    except (OSError, ImapError, ssl.SSLError) as e:
        sys.stderr.write("connect/login failed: %s\n" % e)
        return 2
    out = sys.stdout.buffer
    rc = 0
    try:
        if op == "login":
            pass
        elif op == "cmd":
            for cmd in args:
                untagged, tagged = c.command(cmd.encode())
                for line in untagged + [tagged]:
                    out.write(line)
                if not tagged.startswith(b". OK"):
                    rc = 1
        elif op == "append" and len(args) in (2, 3):
            with open(args[1], "rb") as fh:
                data = fh.read()
            data = re.sub(rb"\r?\n", b"\r\n", data)
            flags = b" (" + args[2].encode() + b")" if len(args) == 3 else b""
            c.check(b"APPEND " + quote(args[0]) + flags, data)
        elif op == "create" and len(args) == 1:
            c.check(b"CREATE " + quote(args[0]))
        elif op == "list" and not args:
            for line in c.check(b'LIST "" "*"'):
                if line.startswith(b"* LIST "):
                    out.write(("%s\t%s\t%s\n" % parse_list(line)).encode())
        elif op == "count" and len(args) == 1:
            for line in c.check(b"STATUS " + quote(args[0]) + b" (MESSAGES)"):
                m = re.search(rb"\(MESSAGES (\d+)\)", line)
                if m:
                    out.write(m.group(1) + b"\n")
        elif op == "flags" and len(args) == 1:
            c.check(b"EXAMINE " + quote(args[0]))
            for line in c.check(b"UID FETCH 1:* (UID FLAGS)"):
                u = re.search(rb"UID (\d+)", line)
                f = re.search(rb"FLAGS \(([^)]*)\)", line)
                if u and f:
                    # \Recent is session state, not a stored flag.
                    fl = [x for x in f.group(1).split() if x != b"\\Recent"]
                    out.write(u.group(1) + b" " + b" ".join(fl) + b"\n")
        elif op == "fetch" and len(args) == 2:
            c.check(b"EXAMINE " + quote(args[0]))
            found = False
            for line in c.check(b"UID FETCH " + args[1].encode() +
                                b" (BODY.PEEK[])"):
                m = re.search(rb"BODY\[\] \{(\d+)\}\r\n", line)
                if m:
                    n = int(m.group(1))
                    out.write(line[m.end():m.end() + n])
                    found = True
            if not found:
                sys.stderr.write("no message with UID %s\n" % args[1])
                rc = 1
        else:
            sys.stderr.write("imap_tool: bad operation or arguments\n")
            return 3
        c.command(b"LOGOUT")
    except ImapError as e:
        sys.stderr.write("imap_tool: %s\n" % e)
        return 1
    except (OSError, ssl.SSLError) as e:
        sys.stderr.write("imap_tool: %s\n" % e)
        return 2
    out.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
