#!/usr/bin/env python3
"""gen_mailbox.py - a realistic, deterministic source mailbox for ferry-syncd.

Used by bench/syncd.sh and the syncd integration tests.  Standard library
only.  The same --seed and options give byte-identical messages.

What it makes (defaults: the benchmark's full size):
  * --count messages (10,000) over 20 folders: nested (Archive/2019,
    Projects/Beta/Specs), non-ASCII (Projects/Réunions, 日本語), one
    with '&' (Travel & Events, mUTF-7 "&-"), Exchange's localised names
    ("Sent Items", "Deleted Items", "Junk E-mail");
  * sizes: most 2-20 KB of text, some 20-100 KB, some 100 KB-1 MB with an
    attachment, a few 2-8 MB attachments (about 300 MB in all at
    --scale 1); --scale multiplies every size;
  * flags (\\Seen, \\Answered, \\Flagged, \\Draft, \\Deleted) and keywords
    ($Forwarded, $Junk, $NotJunk, Important, Work, Personal), INTERNALDATEs
    spread over ten years, a Date header a little before it, a unique
    Message-ID each (--start shifts the numbering, so a later run adds
    new, different messages: the delta tests).

Outputs (one of):
  --maildir DIR   a Dovecot maildir++ root (the user's ~/Maildir): one
                  file per message in FOLDER/cur, INTERNALDATE as the
                  file's mtime, flags and keywords in the file name's
                  ":2," info (keywords as letters a-z via each folder's
                  dovecot-keywords), S= and W= sizes so Dovecot need not
                  read a file to know them.  Folder directories use the
                  maildir++ "." hierarchy and mUTF-7 names, so any
                  namespace separator works.  Also "subscriptions".
                  Dovecot indexes the files on first access (or run
                  "doveadm force-resync -u USER '*'" to do it ahead).
  --mbox FILE     one mboxrd file ("-": stdout), folders as
                  X-Folder headers: a stream for other tools.
  --imap HOST:PORT USER PASS
                  APPEND every message (flags, INTERNALDATE) over plain
                  IMAP; creates the folders.  Only to 127.0.0.1/::1.
Plus:
  --list-folders  print the folder names (UTF-8, "/" between levels),
                  one a line, and exit.
  --manifest FILE "folder<TAB>message-id<TAB>size<TAB>flags" per message.
  --big BYTES     add one message of about BYTES (a single attachment)
                  to INBOX or --folder (the 50 MB memory measure).
  --folder NAME   put every message in this folder.
  --folders LIST  comma-separated folder names: messages go to them in
                  turn (--count 40 --folders INBOX,Archive: 20 each).
  --accounts N    with --maildir: DIR is the mail root, and N accounts
                  are written as DIR/USER/Maildir (USER from --user,
                  default "u%05d", numbered from 1), --count messages
                  each, every account's messages distinct (its own
                  seed); one process instead of N: the many-account
                  benchmark.
"""

import argparse
import base64
import imaplib
import os
import random
import re
import sys
import time

FOLDERS = [
    # (name, weight)
    ("INBOX", 25.0),
    ("Sent Items", 12.0),
    ("Drafts", 0.5),
    ("Deleted Items", 4.0),
    ("Junk E-mail", 2.0),
    ("Archive", 3.0),
    ("Archive/2019", 7.0),
    ("Archive/2020", 7.0),
    ("Archive/2021", 7.0),
    ("Archive/2022", 7.0),
    ("Projects", 1.5),
    ("Projects/Alpha", 3.0),
    ("Projects/Beta", 3.0),
    ("Projects/Beta/Specs", 2.0),
    ("Projects/Réunions", 2.0),
    ("Lists", 1.0),
    ("Lists/dev-announce", 5.0),
    ("Receipts", 3.0),
    ("Travel & Events", 2.0),
    ("日本語", 3.0),
]

KEYWORDS = ["$Forwarded", "$Junk", "$NotJunk", "Important", "Work",
            "Personal"]

# Maildir info letters of the system flags, in ASCII order.
SYSFLAGS = [("\\Draft", "D"), ("\\Flagged", "F"), ("\\Answered", "R"),
            ("\\Seen", "S"), ("\\Deleted", "T")]

# INTERNALDATEs between these two instants (fixed: deterministic output).
DATE_FIRST = 1420070400   # 2015-01-01
DATE_LAST = 1735689600    # 2025-01-01

PEOPLE = ["Alice Martin", "Bob Keller", "Chloé Durand", "Dmitri Ivanov",
          "Eva Schäfer", "Farid Haddad", "Grace Lee", "Hiro Tanaka",
          "Ines Moreau", "Jon Berg", "Katarzyna Nowak", "Luis García"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.de"]
SUBJ = ["meeting notes", "quarterly report", "invoice", "re: budget",
        "travel plans", "photos", "draft contract", "release 2.4",
        "lunch?", "build failure", "Rückfrage zum Angebot", "résumé",
        "weekly sync", "server migration", "holiday schedule"]


def mutf7_encode(name):
    """Encode a folder name component in IMAP modified UTF-7 (RFC 3501)."""
    out = []
    buf = []

    def flush():
        if buf:
            raw = "".join(buf).encode("utf-16-be")
            b = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b.replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        o = ord(ch)
        if 0x20 <= o <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


class Corpus:
    """Text to slice message bodies from: cheap, deterministic, wordy."""

    def __init__(self, rnd):
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        weights = [12, 9, 8, 7, 7, 6, 6, 6, 5, 4, 4, 3, 3, 2, 2, 2, 2, 2,
                   2, 1, 1, 1, 1, 1, 1, 1]
        words = []
        for _ in range(3000):
            n = rnd.randint(2, 10)
            words.append("".join(rnd.choices(letters, weights, k=n)))
        lines = []
        size = 0
        while size < 512 * 1024:
            line = []
            width = 0
            while width < 68:
                w = words[min(int(rnd.paretovariate(1.2)) - 1, 2999)
                          if rnd.random() < 0.7 else rnd.randrange(3000)]
                line.append(w)
                width += len(w) + 1
            s = " ".join(line)
            s = s[0].upper() + s[1:] + "."
            lines.append(s)
            size += len(s) + 1
        self.text = "\n".join(lines) + "\n"

    def take(self, rnd, nbytes):
        """About nbytes of whole lines from a random place."""
        t = self.text
        if nbytes >= len(t):
            reps = nbytes // len(t) + 1
            return (t * reps)[:nbytes].rsplit("\n", 1)[0] + "\n"
        start = t.find("\n", rnd.randrange(len(t) - nbytes)) + 1
        end = t.rfind("\n", start, start + nbytes) + 1
        if end <= start:
            end = start + nbytes
        return t[start:end]


def pick_size(rnd, scale):
    """The message's target size in bytes (see the module comment)."""
    r = rnd.random()
    if r < 0.895:
        lo, hi, kind = 2000, 20000, "text"
    elif r < 0.965:
        lo, hi, kind = 20000, 100000, "text"
    elif r < 0.9985:
        lo, hi, kind = 100000, 1000000, "attach"
    else:
        lo, hi, kind = 2000000, 8000000, "attach"
    # log-uniform inside the band: many near the bottom, as in real mail
    size = int(lo * (hi / lo) ** rnd.random())
    return max(600, int(size * scale)), kind


def fmt_date(t, rnd):
    """RFC 5322 Date for unix time t in a plausible zone."""
    off = rnd.choice([0, 60, 120, -300, -420, 330, 540])
    lt = time.gmtime(t + off * 60)
    sign = "+" if off >= 0 else "-"
    return time.strftime("%a, %d %b %Y %H:%M:%S ", lt) + \
        "%s%02d%02d" % (sign, abs(off) // 60, abs(off) % 60)


def addr(rnd):
    p = rnd.choice(PEOPLE)
    local = p.split()[0].lower().encode("ascii", "ignore").decode()
    dom = rnd.choice(DOMAINS)
    return p, "%s@%s" % (local or "user", dom)


def encode_hdr(s):
    """RFC 2047 for non-ASCII header text."""
    try:
        s.encode("ascii")
        return s
    except UnicodeEncodeError:
        return "=?UTF-8?B?%s?=" % base64.b64encode(s.encode()).decode()


def make_message(rnd, corpus, n, folder, size, kind, seed):
    """(bytes with LF line ends, internaldate, flags list, keywords list)"""
    idate = rnd.randint(DATE_FIRST, DATE_LAST)
    sent = idate - rnd.randint(5, 3600)
    fname, faddr = addr(rnd)
    tname, taddr = addr(rnd)
    if folder in ("Sent Items", "Drafts"):
        fname, faddr = "Alice Martin", "alice@example.com"
    subj = rnd.choice(SUBJ) + " #%d" % n
    mid = "<%08x.%d.%d@gen.mailferry.test>" % (
        rnd.getrandbits(32), seed, n)
    h = [
        "Return-Path: <%s>" % faddr,
        "From: %s <%s>" % (encode_hdr(fname), faddr),
        "To: %s <%s>" % (encode_hdr(tname), taddr),
        "Subject: %s" % encode_hdr(subj),
        "Date: %s" % fmt_date(sent, rnd),
        "Message-ID: %s" % mid,
        "MIME-Version: 1.0",
    ]
    uniq = "gen-mailbox message %d seed %d folder %s\n" % (n, seed, folder)
    if kind == "text":
        h.append("Content-Type: text/plain; charset=utf-8")
        h.append("Content-Transfer-Encoding: 8bit")
        hdr = "\n".join(h) + "\n\n"
        body = uniq + corpus.take(rnd, max(0, size - len(hdr) - len(uniq)))
        data = (hdr + body).encode("utf-8")
    else:
        bnd = "=_gen_%x" % rnd.getrandbits(48)
        h.append('Content-Type: multipart/mixed; boundary="%s"' % bnd)
        hdr = "\n".join(h) + "\n\n"
        text = uniq + corpus.take(rnd, rnd.randint(500, 4000))
        # base64 grows by 4/3 plus a newline every 76 characters
        raw = max(1, int((size - len(hdr) - len(text) - 400) * 57 / 77))
        att = base64.encodebytes(rnd.randbytes(raw)).decode("ascii")
        fn = rnd.choice(["scan.pdf", "photo.jpg", "slides.pptx",
                         "data.zip", "report.docx"])
        data = (hdr + "This is a multi-part message in MIME format.\n\n" +
                "--%s\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n%s\n" % (bnd, text) +
                "--%s\nContent-Type: application/octet-stream; "
                'name="%s"\nContent-Transfer-Encoding: base64\n'
                'Content-Disposition: attachment; filename="%s"\n\n'
                % (bnd, fn, fn) + att + "\n--%s--\n" % bnd).encode("utf-8")
    flags = []
    r = rnd.random()
    if folder == "Drafts":
        flags.append("\\Draft")
    elif r < 0.82 or folder in ("Sent Items", "Archive") or \
            folder.startswith("Archive/"):
        flags.append("\\Seen")
    if rnd.random() < 0.15:
        flags.append("\\Answered")
    if rnd.random() < 0.05:
        flags.append("\\Flagged")
    if folder == "Deleted Items" and rnd.random() < 0.1:
        flags.append("\\Deleted")
    kws = [k for k in KEYWORDS if rnd.random() < 0.04]
    if folder == "Junk E-mail" and "$Junk" not in kws:
        kws.append("$Junk")
    return data, idate, flags, kws, mid


def plan(args):
    """Yield (n, folder, rnd) for every message, deterministically."""
    folders = [f for f, _ in FOLDERS]
    weights = [w for _, w in FOLDERS]
    master = random.Random(args.seed * 1000003 + args.start)
    for i in range(args.count):
        n = args.start + i
        if args.folder:
            folder = args.folder
        elif args.folders:
            folder = args.folders[i % len(args.folders)]
        elif i < len(folders) and args.count >= len(folders):
            folder = folders[i]          # every folder gets one
        else:
            folder = master.choices(folders, weights)[0]
        yield n, folder, random.Random("%d/%d" % (args.seed, n))


def messages(args, corpus=None):
    if corpus is None:
        corpus = Corpus(random.Random(args.seed))
    for n, folder, rnd in plan(args):
        size, kind = pick_size(rnd, args.scale)
        yield (folder,) + make_message(rnd, corpus, n, folder, size, kind,
                                       args.seed)
    if args.big:
        folder = args.folder or "INBOX"
        rnd = random.Random("%d/big/%d" % (args.seed, args.start))
        yield (folder,) + make_message(rnd, corpus, args.start + args.count,
                                       folder, args.big, "attach", args.seed)


# ---- maildir --------------------------------------------------------------

class Maildir:
    def __init__(self, root):
        self.root = root
        self.kw = {}      # folder -> {keyword: index}
        self.seq = 0
        self.host = "gen"
        self.subs = []
        os.makedirs(root, exist_ok=True)

    def dir(self, folder):
        if folder == "INBOX":
            return self.root
        return os.path.join(self.root, "." + ".".join(
            mutf7_encode(p) for p in folder.split("/")))

    def ensure(self, folder):
        if folder in self.kw:
            return
        d = self.dir(folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if d != self.root:
            # Dovecot marks maildir++ folders with this (empty) file.
            open(os.path.join(d, "maildirfolder"), "a").close()
            # the parents of a nested folder exist as folders too
            parts = folder.split("/")
            for i in range(1, len(parts)):
                self.ensure("/".join(parts[:i]))
        self.kw[folder] = self.load_keywords(d)
        if folder != "INBOX":
            self.subs.append(folder)

    @staticmethod
    def load_keywords(d):
        kw = {}
        try:
            with open(os.path.join(d, "dovecot-keywords"),
                      encoding="utf-8") as f:
                for line in f:
                    idx, _, name = line.rstrip("\n").partition(" ")
                    kw[name] = int(idx)
        except FileNotFoundError:
            pass
        return kw

    def put(self, folder, data, idate, flags, kws):
        self.ensure(folder)
        d = self.dir(folder)
        kwmap = self.kw[folder]
        letters = ""
        for k in kws:
            if k not in kwmap:
                if len(kwmap) >= 26:
                    continue   # maildir holds 26 keywords a folder
                kwmap[k] = len(kwmap)
            letters += chr(ord("a") + kwmap[k])
        info = "".join(c for f, c in SYSFLAGS if f in flags)
        info += "".join(sorted(letters))
        self.seq += 1
        vsize = len(data) + data.count(b"\n")   # with CRLF line ends
        base = "%d.M%dP%dQ%d.%s,S=%d,W=%d:2,%s" % (
            idate, self.seq % 1000000, os.getpid() % 100000, self.seq,
            self.host, len(data), vsize, info)
        tmp = os.path.join(d, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(data)
        os.utime(tmp, (idate, idate))
        os.rename(tmp, os.path.join(d, "cur", base))

    def close(self):
        for folder, kwmap in self.kw.items():
            if not kwmap:
                continue
            with open(os.path.join(self.dir(folder), "dovecot-keywords"),
                      "w", encoding="utf-8") as f:
                for name, idx in sorted(kwmap.items(), key=lambda x: x[1]):
                    f.write("%d %s\n" % (idx, name))
        # Subscriptions: the old one-name-a-line format Dovecot still
        # reads; names with the maildir++ "." and mUTF-7, as on disk.
        path = os.path.join(self.root, "subscriptions")
        old = set()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = {l.rstrip("\n") for l in f if l.strip()}
        names = sorted(old | {".".join(mutf7_encode(p) for p in
                                       s.split("/")) for s in self.subs})
        if names:
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(n + "\n" for n in names))


# ---- mbox -----------------------------------------------------------------

class Mbox:
    def __init__(self, path):
        self.f = sys.stdout.buffer if path == "-" else open(path, "wb")

    def put(self, folder, data, idate, flags, kws):
        w = self.f.write
        w(b"From gen@mailferry.test " +
          time.strftime("%a %b %d %H:%M:%S %Y",
                        time.gmtime(idate)).encode() + b"\n")
        w(("X-Folder: %s\n" % folder).encode("utf-8"))
        st = "".join(c for f, c in (("\\Seen", "R"),) if f in flags)
        if st:
            w(b"Status: " + st.encode() + b"O\n")
        if kws:
            w(("X-Keywords: %s\n" % " ".join(kws)).encode())
        for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else \
                data.split(b"\n"):
            if line.lstrip(b">").startswith(b"From "):
                line = b">" + line
            w(line + b"\n")
        w(b"\n")

    def close(self):
        self.f.flush()
        if self.f is not sys.stdout.buffer:
            self.f.close()


# ---- IMAP APPEND ------------------------------------------------------------

class Imap:
    def __init__(self, hostport, user, password):
        host, _, port = hostport.rpartition(":")
        host = host.strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost"):
            sys.exit("gen_mailbox: --imap only to 127.0.0.1 or ::1")
        self.c = imaplib.IMAP4(host, int(port))
        self.c.login(user, password)
        typ, data = self.c.list('""', '""')
        self.sep = "."
        if typ == "OK" and data and data[0]:
            parts = data[0].decode().split('"')
            if len(parts) >= 3 and parts[1] not in ("", "NIL"):
                self.sep = parts[1]
        # The personal namespace's prefix ("INBOX." on Courier): folders
        # are created below it.
        self.prefix = ""
        typ, data = self.c.namespace()
        if typ == "OK" and data and data[0]:
            m = re.match(rb'\(\("([^"]*)"', data[0])
            if m:
                self.prefix = m.group(1).decode()
        self.made = set()

    def wire(self, folder):
        if folder == "INBOX":
            return "INBOX"
        return self.prefix + self.sep.join(mutf7_encode(p)
                                           for p in folder.split("/"))

    def put(self, folder, data, idate, flags, kws):
        name = self.wire(folder)
        if folder not in self.made:
            parts = folder.split("/")
            for i in range(1, len(parts) + 1):
                if "/".join(parts[:i]) == "INBOX":
                    continue
                sub = self.wire("/".join(parts[:i]))
                self.c.create('"%s"' % sub)
                self.c.subscribe('"%s"' % sub)
            self.made.add(folder)
        fl = "(" + " ".join(flags + kws) + ")"
        typ, resp = self.c.append('"%s"' % name, fl,
                                  imaplib.Time2Internaldate(idate),
                                  data.replace(b"\n", b"\r\n"))
        if typ != "OK":
            sys.exit("gen_mailbox: APPEND to %s: %r" % (name, resp))

    def close(self):
        self.c.logout()


def many_accounts(args):
    """--accounts: N maildirs under args.maildir, one corpus for all."""
    corpus = Corpus(random.Random(args.seed))
    root, seed = args.maildir, args.seed
    total = count = 0
    started = time.time()
    for k in range(1, args.accounts + 1):
        try:
            user = args.user % k
        except (TypeError, ValueError):
            sys.exit("gen_mailbox: --user needs one %d")
        args.seed = seed * 100003 + k
        out = Maildir(os.path.join(root, user, "Maildir"))
        for folder, data, idate, flags, kws, mid in messages(args, corpus):
            out.put(folder, data, idate, flags, kws)
            total += len(data)
            count += 1
        out.close()
    args.seed = seed
    if not args.quiet:
        print("gen_mailbox: %d accounts, %d messages, %.1f MB in %.1f s" % (
            args.accounts, count, total / 1e6, time.time() - started))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every message size")
    ap.add_argument("--start", type=int, default=0,
                    help="first message number (new, distinct messages)")
    ap.add_argument("--folder", help="put every message in this folder")
    ap.add_argument("--big", type=int, default=0, metavar="BYTES",
                    help="add one message of about BYTES to INBOX or --folder")
    ap.add_argument("--folders", metavar="LIST")
    ap.add_argument("--accounts", type=int, default=0, metavar="N")
    ap.add_argument("--user", default="u%05d", metavar="FORMAT")
    ap.add_argument("--maildir", metavar="DIR")
    ap.add_argument("--mbox", metavar="FILE")
    ap.add_argument("--imap", nargs=3, metavar=("HOST:PORT", "USER", "PASS"))
    ap.add_argument("--manifest", metavar="FILE")
    ap.add_argument("--list-folders", action="store_true")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args()

    if args.list_folders:
        for f, _ in FOLDERS:
            print(f)
        return 0
    outs = [x for x in (args.maildir, args.mbox, args.imap) if x]
    if len(outs) != 1:
        ap.error("give exactly one of --maildir, --mbox, --imap")
    if args.folders is not None:
        args.folders = [f for f in args.folders.split(",") if f]
        if not args.folders:
            ap.error("--folders: no folder named")
    if args.accounts:
        if not args.maildir:
            ap.error("--accounts needs --maildir")
        return many_accounts(args)
    if args.maildir:
        out = Maildir(args.maildir)
    elif args.mbox:
        out = Mbox(args.mbox)
    else:
        out = Imap(*args.imap)
    man = open(args.manifest, "w", encoding="utf-8") if args.manifest \
        else None
    total = 0
    count = 0
    started = time.time()
    for folder, data, idate, flags, kws, mid in messages(args):
        out.put(folder, data, idate, flags, kws)
        total += len(data)
        count += 1
        if man:
            man.write("%s\t%s\t%d\t%s\n" % (folder, mid, len(data),
                                             " ".join(flags + kws)))
    out.close()
    if man:
        man.close()
    if not args.quiet:
        print("gen_mailbox: %d messages, %.1f MB in %.1f s" % (
            count, total / 1e6, time.time() - started),
            file=sys.stderr if args.mbox == "-" else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
