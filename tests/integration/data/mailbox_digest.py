#!/usr/bin/env python3
# mailbox_digest.py - one line per message of an IMAP account, for
# comparing a source and a destination (the syncd integration tests).
#
#   mailbox_digest.py PORT USER PASS [FOLDER...]
#
# Prints "FOLDER<TAB>MESSAGE-ID<TAB>SHA256<TAB>FLAGS<TAB>INTERNALDATE"
# for every message of every folder (or of the FOLDERs given, wire
# names), sorted.  FOLDER is the wire name (mUTF-7) with the server's
# separator replaced by "/"; MESSAGE-ID is the raw Message-ID header
# value ("-" when none); SHA256 is over the whole message as the server
# returns it (BODY.PEEK[]); FLAGS are sorted, without \Recent.  Two
# accounts that hold the same messages print the same lines; a message
# copied twice prints its line twice.  Read-only (EXAMINE, BODY.PEEK):
# safe on a source.  127.0.0.1 only.

import hashlib
import imaplib
import re
import sys


def main():
    port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    want = sys.argv[4:]
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(user, pw)
    typ, data = c.list('""', '"*"')
    folders = []
    sep = "."
    for item in data:
        if not item:
            continue
        m = re.match(rb'\((.*?)\) (NIL|"(.)"|"\\(.)") (.*)$', item)
        if not m:
            sys.exit("mailbox_digest: cannot parse LIST %r" % item)
        if b"\\Noselect" in m.group(1) or b"\\NonExistent" in m.group(1):
            continue
        s = m.group(3) or m.group(4)
        if s:
            sep = s.decode()
        name = m.group(5)
        if name.startswith(b'"'):
            name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        folders.append(name.decode("ascii"))
    if want:
        folders = [f for f in folders if f in want]
    out = []
    for f in folders:
        typ, _ = c.select('"%s"' % f.replace("\\", "\\\\").replace('"', '\\"'),
                          readonly=True)
        if typ != "OK":
            sys.exit("mailbox_digest: EXAMINE %s failed" % f)
        typ, data = c.uid("FETCH", "1:*",
                          "(FLAGS INTERNALDATE BODY.PEEK[])")
        if typ != "OK":
            sys.exit("mailbox_digest: FETCH in %s failed" % f)
        for part in data:
            if not isinstance(part, tuple):
                continue
            meta, body = part
            fl = re.search(rb"FLAGS \((.*?)\)", meta)
            flags = sorted(x for x in (fl.group(1).decode().split()
                                       if fl else [])
                           if x != "\\Recent")
            idm = re.search(rb'INTERNALDATE "([^"]*)"', meta)
            mid = re.search(rb"(?im)^message-id:[ \t]*(.*?)\r?$",
                            body.split(b"\r\n\r\n", 1)[0])
            out.append("%s\t%s\t%s\t%s\t%s" % (
                f.replace(sep, "/") if f != "INBOX" else f,
                mid.group(1).decode("utf-8", "replace") if mid else "-",
                hashlib.sha256(body).hexdigest(), " ".join(flags),
                idm.group(1).decode() if idm else "-"))
    c.logout()
    out.sort()
    sys.stdout.write("".join(l + "\n" for l in out))


if __name__ == "__main__":
    main()
