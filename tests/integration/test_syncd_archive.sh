#!/bin/bash
# test_syncd_archive.sh - ferry-syncd with a local archive as the source:
# source = maildir:///... (a Maildir++ tree with flags, Dovecot keyword
# letters and mtimes as INTERNALDATE) and source = mbox:///... (a
# directory of mbox files: mboxrd with ">From " escaping, mboxcl2 with
# Content-Length and an unescaped "From " body line).  A full --once
# into a real Dovecot is checked message by message (bytes, flags,
# INTERNALDATE) against an independent reader: a second Dovecot over a
# copy of the maildir, and a Python reading of the mbox files.  Then new
# files: a delta pass copies exactly those; a rerun copies nothing; the
# JSON report's figures match.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot "$LIB_PYTHON"
[ -x "$FERRY_SYNCD" ] || {
	echo "Bail out! $FERRY_SYNCD not built"
	exit 1
}
GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$top_srcdir/tests/integration/data/mailbox_digest.py

DOVECOT_NAME=dst DOVECOT_SEP=/ check "destination dovecot starts" \
	start_dovecot alice:pw bob:pw carol:pw dave:pw || {
	echo "Bail out! dovecot does not start"
	exit 1
}
DOVECOT_NAME=rd DOVECOT_SEP=. check "reader dovecot starts" \
	start_dovecot alice:pw || {
	echo "Bail out! dovecot does not start"
	exit 1
}

# --- the archives ------------------------------------------------------------
check "a maildir is generated (flags, keywords, dates, nested folders)" \
	"$LIB_PYTHON" "$GEN" --seed 5 --count 120 --scale 0.05 --maildir "$T/arch/alice/Maildir" -q
# one unreadable message would be reported, not skipped: keep them readable
chmod -R a+rX "$T/arch"

mkdir -p "$T/mbox/Work.sbd"
"$LIB_PYTHON" - "$T/mbox" <<'PYEOF'
import os, sys
d = sys.argv[1]
def rd(path, msgs):
    with open(path, "wb") as f:
        for i, (date, body) in enumerate(msgs):
            f.write(b"From sender@example.com " + date + b"\n")
            for line in body[:-1].split(b"\n"):
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                f.write(line + b"\n")
            f.write(b"\n")
msgs = []
for i in range(6):
    body = (b"From: a%d@example.com\nTo: alice@example.com\n"
            b"Subject: rd %d\nMessage-ID: <rd.%d@example.com>\n" % (i, i, i))
    if i == 1:
        body += b"Status: RO\nX-Status: AF\nX-Keywords: Projekt $Label1\n"
    body += b"\nHello\nFrom the start of a line\n>From quoted\nbye\n"
    msgs.append((b"Mon Mar  2 10:0%d:00 2020" % i, body))
rd(os.path.join(d, "inbox"), msgs)
rd(os.path.join(d, "Work.sbd", "2019"), msgs[:2])
# readpst -r layout: a directory per folder holding a file "mbox"
os.makedirs(os.path.join(d, "Outlook", "Sent"))
rd(os.path.join(d, "Outlook", "Sent", "mbox"), msgs[2:3])
# mboxcl2: Content-Length, no escaping, a "From " line in the body
with open(os.path.join(d, "Work"), "wb") as f:
    for i in range(3):
        body = b"\nline one\nFrom here on it is mboxcl2 %d\nend\n" % i
        hdr = (b"From: c%d@example.com\nSubject: cl2 %d\n"
               b"Message-ID: <cl2.%d@example.com>\nContent-Length: %d\n"
               % (i, i, i, len(body) - 1))
        f.write(b"From sender@example.com Tue Apr  7 08:00:0%d 2021\n" % i)
        f.write(hdr + body + b"\n")
PYEOF
ok "mbox files written (mboxrd, mboxcl2, a .sbd tree)"

cat >"$T/accounts" <<EOF
alice x alice pw
EOF
chmod 600 "$T/accounts"
mkconf() { # mkconf SOURCE-URL STATE
	cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/$2
log = stderr
[syncd]
http =
source = $1
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
accounts = $T/accounts
parallel = 2
connections_per_server = 2
EOF
}
syncd() {
	timeout 180 "$FERRY_SYNCD" -c "$T/syncd.conf" "$@"
}
# normalise digests: INTERNALDATE as epoch seconds
norm() {
	"$LIB_PYTHON" -c '
import sys, email.utils, time, datetime
for l in sys.stdin:
    f = l.rstrip("\n").split("\t")
    if f[-1] != "-":
        f[-1] = str(int(datetime.datetime.strptime(f[-1], "%d-%b-%Y %H:%M:%S %z").timestamp()))
    print("\t".join(f))' | sort
}
jget() { # jget FILE EXPR - from the JSON report in a check log
	"$LIB_PYTHON" - "$1" "$2" <<'PYEOF'
import json, sys
text = open(sys.argv[1]).read()
start = text.index("{")
r, _ = json.JSONDecoder().raw_decode(text[start:])
def tot(key):
    return sum(f.get(key, 0) or 0 for a in r["accounts"] for f in a["folders"])
print(eval(sys.argv[2]))
PYEOF
}
# the engine maps folders by role ("Deleted Items" -> "Trash"): apply
# the mapping the log shows to the reader's folder names
remap() { # remap LOG
	"$LIB_PYTHON" -c '
import re, sys
m = {}
for l in open(sys.argv[1]):
    x = re.search(r"info: [^:]+: (.+?) -> (.+?): source=", l)
    if x:
        m[x.group(1)] = x.group(2)
for l in sys.stdin:
    f = l.rstrip("\n").split("\t")
    f[0] = m.get(f[0], f[0])
    print("\t".join(f))' "$1" | sort
}
reader_copy() { # the independent reader's view of the maildir
	rm -rf "$T/dovecot/rd/mail/alice"
	mkdir -p "$T/dovecot/rd/mail/alice"
	cp -a "$T/arch/alice/Maildir" "$T/dovecot/rd/mail/alice/Maildir"
	chown -R "$(stat -c %u:%g "$T/dovecot/rd/mail")" "$T/dovecot/rd/mail/alice"
	"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_rd" alice pw | norm
}

# --- config errors -----------------------------------------------------------
mkconf "maildir://relative/path" st-bad
check_output "a relative archive path is refused with file:line" 1 \
	bash -c "timeout 20 '$FERRY_SYNCD' -c '$T/syncd.conf' --once 2>&1 | grep -c 'syncd.conf:[0-9]*:.*absolute'"

# --- maildir: full pass --------------------------------------------------------
mkconf "maildir://$T/arch/%u/Maildir" st-md
find "$T/arch" -type f -newer "$T/accounts" -printf '%p %T@\n' | sort >"$T/arch.before"
check "maildir --once copies everything (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/md1.log"
reader_copy | remap "$T/md1.log" >"$T/md.want"
"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_dst" alice pw | norm >"$T/md.got"
N=$(wc -l <"$T/md.want")
if [ "$N" -ge 100 ] && cmp -s "$T/md.want" "$T/md.got"; then
	ok "maildir: $N messages byte for byte, flags, keywords, INTERNALDATE"
else
	not_ok "maildir: messages byte for byte, flags, keywords, INTERNALDATE" \
		"want $N got $(wc -l <"$T/md.got")" "$(diff "$T/md.want" "$T/md.got" | head -10)" \
		"$(grep -i 'warn\|error\|fail' "$T/md1.log" | head -10)"
fi
check_output "the report counts every maildir message copied" "$N" \
	jget "$T/md1.log" 'tot("copied")'
grep -q 'Flagged\|Seen' "$T/md.got" && grep -q '\$' "$T/md.got" &&
	ok "flags and keywords are present in the copy" ||
	not_ok "flags and keywords are present in the copy" "$(head -3 "$T/md.got")"
find "$T/arch" -type f -newer "$T/accounts" -printf '%p %T@\n' | sort | cmp -s - "$T/arch.before" &&
	ok "the maildir is left untouched" || not_ok "the maildir is left untouched"

# --- maildir: delta and rerun --------------------------------------------------
check "10 new messages arrive in the maildir" \
	"$LIB_PYTHON" "$GEN" --seed 6 --start 5000 --count 10 --scale 0.05 --folder INBOX \
	--maildir "$T/arch/alice/Maildir" -q
# a flag change renames a file: it must not count as a new message
f=$(ls "$T/arch/alice/Maildir/cur" | grep -v ':2,.*S' | head -1)
[ -n "$f" ] && mv "$T/arch/alice/Maildir/cur/$f" "$T/arch/alice/Maildir/cur/${f%%:2,*}:2,S"
check "maildir delta pass (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/md2.log"
check_output "the delta pass copies exactly the 10 new messages" 10 \
	jget "$T/md2.log" 'tot("copied")'
reader_copy | remap "$T/md1.log" | cut -f1-3 | sort >"$T/md2.want"
"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_dst" alice pw | norm | cut -f1-3 | sort >"$T/md2.got"
cmp -s "$T/md2.want" "$T/md2.got" && ok "after the delta the destination holds each message once" ||
	not_ok "after the delta the destination holds each message once" \
		"$(diff "$T/md2.want" "$T/md2.got" | head -10)"
check "maildir rerun (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/md3.log"
check_output "a rerun copies nothing" 0 jget "$T/md3.log" 'tot("copied")'

# a message the reader cannot serve fails its folder, with file and reason
printf 'Subject: nul\nMessage-ID: <nul@example.com>\n\na\0b\n' \
	>"$T/arch/alice/Maildir/cur/1700000000.M1P1.host:2,S"
check_output "a message with NUL bytes makes the pass incomplete (exit 1)" 1 \
	bash -c "timeout 60 '$FERRY_SYNCD' -c '$T/syncd.conf' --once --json >'$T/md4.log' 2>&1; echo \$?"
grep -q "1700000000.M1P1.host.*contains NUL bytes" "$T/md4.log" &&
	ok "the report names the file and the reason" ||
	not_ok "the report names the file and the reason" "$(grep -i 'nul\|fail' "$T/md4.log" | head -5)"
rm -f "$T/arch/alice/Maildir/cur/1700000000.M1P1.host:2,S"

if [ -x "${FERRYCTL:-}" ]; then
	"$FERRYCTL" -c "$T/syncd.conf" preflight >"$T/pf.log" 2>&1
	grep -q "local archive" "$T/pf.log" && ! grep -qi "src.*cannot\|archive.*BLOCK" "$T/pf.log" &&
		ok "ferryctl preflight logs in through the archive reader" ||
		not_ok "ferryctl preflight logs in through the archive reader" "$(head -30 "$T/pf.log")"
fi

# --- mbox: a directory of files ----------------------------------------------
# (into bob, so the maildir copy does not mix in)
cat >"$T/accounts" <<EOF
bob x bob pw
EOF
mkconf "mbox://$T/mbox" st-mb
check "mbox --once copies everything (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/mb1.log"
"$LIB_PYTHON" - "$T/mbox" <<'PYEOF' | sort >"$T/mb.want"
# the independent reading of the files written above
import hashlib, os, re, sys, calendar, time
d = sys.argv[1]
def parse(path, cl2):
    data = open(path, "rb").read()
    out = []
    if cl2:
        p = 0
        while p < len(data):
            e = data.index(b"\n", p)
            fl = data[p:e]; p = e + 1
            h = data.index(b"\n\n", p) + 2
            cl = int(re.search(rb"Content-Length: (\d+)", data[p:h]).group(1))
            out.append((fl, data[p:h + cl])); p = h + cl + 1
        return out
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    for i, s in enumerate(starts):
        e = data.index(b"\n", s)
        fl, msg = data[s:e], data[e + 1:starts[i + 1] if i + 1 < len(starts) else len(data)]
        if msg.endswith(b"\n\n"):
            msg = msg[:-1]
        msg = re.sub(rb"(?m)^>(>*From )", rb"\1", msg)
        out.append((fl, msg))
    return out
for folder, path, cl2 in (("INBOX", "inbox", 0), ("Work/2019", "Work.sbd/2019", 0), ("Work", "Work", 1), ("Outlook/Sent", "Outlook/Sent/mbox", 0)):
    for fl, msg in parse(os.path.join(d, path), cl2):
        body = msg.replace(b"\n", b"\r\n")
        mid = re.search(rb"(?im)^message-id:[ \t]*(.*?)$", msg).group(1).decode()
        flags = []
        st = re.search(rb"(?m)^Status: (.*)$", msg.split(b"\n\n")[0])
        xs = re.search(rb"(?m)^X-Status: (.*)$", msg.split(b"\n\n")[0])
        kw = re.search(rb"(?m)^X-Keywords: (.*)$", msg.split(b"\n\n")[0])
        if st and b"R" in st.group(1): flags.append("\\Seen")
        if xs and b"A" in xs.group(1): flags.append("\\Answered")
        if xs and b"F" in xs.group(1): flags.append("\\Flagged")
        if kw: flags += kw.group(1).decode().split()
        t = calendar.timegm(time.strptime(fl.decode().split(" ", 2)[2], "%a %b %d %H:%M:%S %Y"))
        print("%s\t%s\t%s\t%s\t%d" % (folder, mid, hashlib.sha256(body).hexdigest(), " ".join(sorted(flags)), t))
PYEOF
"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_dst" bob pw | norm >"$T/mb.got"
if [ "$(wc -l <"$T/mb.want")" -eq 12 ] && cmp -s "$T/mb.want" "$T/mb.got"; then
	ok "mbox: 12 messages byte for byte (From_ unescaped, mboxcl2 kept), flags, dates"
else
	not_ok "mbox: 12 messages byte for byte (From_ unescaped, mboxcl2 kept), flags, dates" \
		"$(diff "$T/mb.want" "$T/mb.got" | head -12)" "$(grep -i 'warn\|error\|fail' "$T/mb1.log" | head -10)"
fi
check_output "the report counts 12 copied" 12 jget "$T/mb1.log" 'tot("copied")'

printf 'From x@example.com Wed May  5 05:05:05 2021\nSubject: appended\nMessage-ID: <app@example.com>\n\nnew\n\n' >>"$T/mbox/inbox"
check "mbox delta pass after an append (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/mb2.log"
check_output "the delta pass copies exactly the appended message" 1 \
	jget "$T/mb2.log" 'tot("copied")'
check "mbox rerun (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/mb3.log"
check_output "an mbox rerun copies nothing" 0 jget "$T/mb3.log" 'tot("copied")'

# --- mbox: one file, as bench/gen_mailbox.py --mbox writes it ---------------
cat >"$T/accounts" <<EOF
carol x carol pw
EOF
check "gen_mailbox writes an mboxrd file" \
	"$LIB_PYTHON" "$GEN" --seed 9 --count 60 --scale 0.05 --mbox "$T/one.mbox" -q
NF=$(grep -c '^From gen@mailferry.test ' "$T/one.mbox")
mkconf "mbox://$T/one.mbox" st-one
check "a single mbox file --once (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/one1.log"
check_output "every message of the file lands in INBOX" "$NF" \
	jget "$T/one1.log" 'tot("copied")'
check_output "the destination INBOX holds them" "$NF" \
	bash -c "'$LIB_PYTHON' '$DIGEST' '$IMAP_PORT_dst' carol pw INBOX | wc -l"
check "a rerun of the single file (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/one2.log"
check_output "copies nothing" 0 jget "$T/one2.log" 'tot("copied")'

# --- daemon: kept sessions see what arrives between passes ------------------
wait_for() { # wait_for COUNT PATTERN FILE (15 s at most)
	local i
	for ((i = 0; i < 150; i++)); do
		[ "$(grep -c -- "$2" "$3" 2>/dev/null)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
mkconf "mbox://$T/one.mbox" st-one
echo "interval = 2s" >>"$T/syncd.conf"
spawn syncd-d "$FERRY_SYNCD" -d -c "$T/syncd.conf"
dp=$SPAWN_PID
check "the daemon runs a pass over the mbox" wait_for 1 "pass [0-9]*: done" "$T/log/syncd-d.log"
printf 'From x@example.com Thu May  6 06:06:06 2021\nSubject: later\nMessage-ID: <later@example.com>\n\nlater\n\n' >>"$T/one.mbox"
n0=$(grep -c "pass [0-9]*: done" "$T/log/syncd-d.log")
check "two more passes follow" wait_for $((n0 + 2)) "pass [0-9]*: done" "$T/log/syncd-d.log"
stop_pid "$dp"
check_output "the daemon copied the message appended between passes, once" 1 \
	bash -c "'$LIB_PYTHON' '$DIGEST' '$IMAP_PORT_dst' carol pw INBOX | grep -c later@example.com"

# --- a big message is streamed from its file, not read whole ---------------
# 64 MiB of LF lines in a maildir file: served with CRLF, byte for byte,
# while ferry-syncd's peak RSS stays far below the message's size (read
# whole, it held the file and its CRLF copy at once).  The mbox reader
# streams the same way; its escapes across chunks are in the unit test.
mkdir -p "$T/bigmd/dave/Maildir/cur" "$T/bigmd/dave/Maildir/new" "$T/bigmd/dave/Maildir/tmp"
"$LIB_PYTHON" - "$T/bigmd/dave/Maildir/cur/1583143200.big.host:2,S" "$T/big.sha" <<'PYEOF'
import hashlib, sys
line = b"x" * 70 + b"\n"
msg = (b"From: big@example.com\nTo: dave@example.com\nSubject: big\n"
       b"Message-ID: <big@example.com>\n\n" + line * 940000)
open(sys.argv[1], "wb").write(msg)
served = msg.replace(b"\n", b"\r\n")
open(sys.argv[2], "w").write(hashlib.sha256(served).hexdigest() + "\n")
PYEOF
ok "a 64 MiB message in a maildir"
cat >"$T/accounts" <<EOF
dave x dave pw
EOF
mkconf "maildir://$T/bigmd/%u/Maildir" st-big
check_output "the big message copies (exit 0)" 0 bash -c "/usr/bin/time -f %M -o '$T/big.rss' \
	timeout 180 '$FERRY_SYNCD' -c '$T/syncd.conf' --once >'$T/big.log' 2>&1; echo \$?"
check_output "the copy is the message as served, byte for byte" "$(cat "$T/big.sha")" \
	bash -c "'$LIB_PYTHON' '$DIGEST' '$IMAP_PORT_dst' dave pw INBOX | cut -f3"
rss=$(tail -1 "$T/big.rss")
if ldd "$FERRY_SYNCD" 2>/dev/null | grep -q libasan; then
	# ASan keeps freed memory in quarantine and maps shadow memory
	skip "peak RSS under AddressSanitizer means nothing (${rss:-?} KB)"
elif [ -n "$rss" ] && [ "$rss" -lt 40000 ]; then
	ok "ferry-syncd's peak RSS stays small (${rss} KB for a 64 MiB message)"
else
	not_ok "ferry-syncd's peak RSS stays small" "${rss:-?} KB"
fi
rm -rf "$T/bigmd"
cat >"$T/accounts" <<EOF
carol x carol pw
EOF

# --- bad input is reported, not skipped -------------------------------------
mkdir -p "$T/bad"
printf 'this is not an mbox\n' >"$T/bad/inbox"
mkconf "mbox://$T/bad" st-bad2
check_output "a file that is not an mbox fails the pass (exit 1) with the reason" 1 \
	bash -c "timeout 60 '$FERRY_SYNCD' -c '$T/syncd.conf' --once >'$T/bad.log' 2>&1; echo \$?"
grep -q "no From_ line" "$T/bad.log" && ok "the reason names the file and the missing From_ line" ||
	not_ok "the reason names the file and the missing From_ line" "$(tail -5 "$T/bad.log")"

mkconf "maildir://$T/nowhere/%u/Maildir" st-bad3
check_output "a missing maildir fails the account (exit 1)" 1 \
	bash -c "timeout 60 '$FERRY_SYNCD' -c '$T/syncd.conf' --once >'$T/bad3.log' 2>&1; echo \$?"
grep -q "nowhere/carol/Maildir is not a maildir" "$T/bad3.log" &&
	ok "the reason names the path, with %u expanded" ||
	not_ok "the reason names the path, with %u expanded" "$(tail -5 "$T/bad3.log")"

done_testing
