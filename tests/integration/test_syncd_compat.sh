#!/bin/bash
# test_syncd_compat.sh - ferry-syncd against servers that lack an
# extension, several accounts at once, and the rate limits.
#
#   no UIDPLUS   a proxy in front of the destination removes UIDPLUS from
#                every capability list and strips [APPENDUID ...] and
#                [COPYUID ...] codes: ferry-syncd must find its copies by
#                Message-ID (syncd/sync.c dst_find), copy each message
#                once, map them (a delta's flag changes land on the right
#                copies) and never copy them again
#   no CONDSTORE a source Dovecot whose imap_capability lacks CONDSTORE
#                and QRESYNC: a delta pass finds 10 flag changes by a
#                full flags scan, without CHANGEDSINCE (debug log), and
#                copies nothing again; the same delta against a source
#                with CONDSTORE uses CHANGEDSINCE (the control)
#   parallel     4 accounts with parallel = 2 and connections_per_server
#                = 4 through counting proxies: every account complete and
#                exact, never more than 4 connections to either server
#                nor more than 2 accounts at once; then the same accounts
#                (fresh state and destinations) with parallel = 4 and
#                connections_per_server = 2: never more than 2 at once
#   rate limits  max_bytes_per_second = 150000 over ~600 KB takes at
#                least total/rate - 1 s; max_messages_per_second = 10
#                over 30 messages takes at least 2 s (lower bounds only:
#                the limiter holds; nothing here is an upper bound)
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot alice:pass a1:p1 a2:p2 a3:p3 a4:p4 r1:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
DOVECOT_NAME=dst check "destination Dovecot starts" \
	start_dovecot bob:pass b1:q1 b2:q2 b3:q3 b4:q4 c1:q1 c2:q2 c3:q3 c4:q4 \
	r2:pass dave:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# The source without CONDSTORE: Dovecot's own post-login list, minus
# CONDSTORE and QRESYNC (imap_capability replaces the whole list).
CAPS=$(imap_cmd "$SRC" alice pass CAPABILITY | sed -n 's/^\* CAPABILITY //p' | tr -d '\r')
NCCAPS=$(tr ' ' '\n' <<<"$CAPS" | grep -v -x -i -e CONDSTORE -e QRESYNC | tr '\n' ' ')
NCCAPS=${NCCAPS% }
if [[ " $CAPS " == *" CONDSTORE "* ]] && [[ " $CAPS " == *" UIDPLUS "* ]]; then
	ok "Dovecot's capabilities after login include CONDSTORE and UIDPLUS"
else
	not_ok "Dovecot's capabilities after login include CONDSTORE and UIDPLUS" "got: $CAPS"
fi
DOVECOT_NAME=nc DOVECOT_EXTRA="imap_capability = $NCCAPS" \
	check "source Dovecot without CONDSTORE and QRESYNC starts" \
	start_dovecot carol:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
NC=$IMAP_PORT_nc
got=$(imap_cmd "$NC" carol pass CAPABILITY | sed -n 's/^\* CAPABILITY //p' | tr -d '\r')
if [ -n "$got" ] && [[ " $got " != *" CONDSTORE "* ]] && [[ " $got " != *" QRESYNC "* ]]; then
	ok "that source advertises neither CONDSTORE nor QRESYNC after login"
else
	not_ok "that source advertises neither CONDSTORE nor QRESYNC after login" "got: $got"
fi

# --- helpers ------------------------------------------------------------------------

# py EXPR FILE - evaluate a Python expression over the JSON report j
py() {
	"$LIB_PYTHON" -c 'import json, sys
try:
    j = json.load(open(sys.argv[2]))
    accounts = j.get("accounts", [])
    reasons = [p["reason"] or "" for a in accounts for f in a.get("folders", [])
               for p in f["problems"]] + \
        [f["error"] for a in accounts for f in a.get("folders", []) if f["error"]] + \
        [a["error"] for a in accounts if a["error"]]
    r = eval(sys.argv[1])
except Exception as e:
    print("PYERR: %s: %s" % (type(e).__name__, e))
    sys.exit(1)
print(r if not isinstance(r, bool) else ("yes" if r else "no"))' "$1" "$2"
}

# syncd RUN CONF - ferry-syncd --once --json; report in $T/RUN.json, log
# in $T/log/syncd-RUN.log, exit code in SYNCD_RC, wall time in SYNCD_MS.
syncd() {
	local t0 t1
	t0=$(date +%s%N)
	timeout -s KILL 60 "$FERRY_SYNCD" -c "$2" --once --json \
		>"$T/$1.json" 2>"$T/log/syncd-$1.log"
	SYNCD_RC=$?
	t1=$(date +%s%N)
	SYNCD_MS=$(((t1 - t0) / 1000000))
}

# pass_ok RUN DESC - ok when the pass exited 0 and its report is complete
pass_ok() {
	local c
	c=$(py 'j["complete"]' "$T/$1.json" 2>&1)
	if [ "$SYNCD_RC" -eq 0 ] && [ "$c" = yes ]; then
		ok "$2 (exit 0, complete, ${SYNCD_MS} ms)"
	else
		not_ok "$2 (exit 0, complete)" "exit $SYNCD_RC, complete=$c" \
			"reasons: $(py reasons "$T/$1.json" 2>&1 | head -c 600)" \
			"$(tail -n 8 "$T/log/syncd-$1.log")"
	fi
}

# copied_is RUN N DESC - the report's total copied is N
copied_is() {
	local got
	got=$(py 'j["totals"]["copied"]' "$T/$1.json" 2>&1)
	if [ "$got" = "$2" ]; then
		ok "$3"
	else
		not_ok "$3" "copied: $got, wanted $2" "$(tail -n 5 "$T/log/syncd-$1.log")"
	fi
}

# digest PORT USER PASS - every message, one line (folder, Message-ID,
# body hash, flags, INTERNALDATE), sorted
digest() {
	"$LIB_PYTHON" "$DIGEST" "$@"
}

# same DESC SRCPORT SRCUSER SRCPASS DSTPORT DSTUSER DSTPASS - the
# destination holds exactly the source's messages (each once, same body,
# flags and date).  The generator's Outlook-style folders land in the
# destination's well-known ones (plan: "well-known name").
same() {
	local desc=$1 n
	digest "$2" "$3" "$4" 2>&1 | sed -e 's/^Deleted Items\t/Trash\t/' \
		-e 's/^Junk E-mail\t/Junk\t/' -e 's/^Sent Items\t/Sent\t/' |
		sort >"$T/same.src"
	digest "$5" "$6" "$7" >"$T/same.dst" 2>&1
	n=$(wc -l <"$T/same.src")
	if [ "$n" -gt 0 ] && cmp -s "$T/same.src" "$T/same.dst"; then
		ok "$desc ($n messages)"
	else
		not_ok "$desc" "source $n lines, destination $(wc -l <"$T/same.dst") lines" \
			"$(diff "$T/same.src" "$T/same.dst" | head -n 8)"
	fi
}

# fill MAILDIR SEED COUNT [gen_mailbox options] - generated messages
# straight into a Maildir, owned by the mail user, then a resync
fill() {
	local dir=$1 seed=$2 count=$3 inst user
	shift 3
	"$LIB_PYTHON" "$GEN" -q --seed "$seed" --count "$count" --scale 0.01 \
		--maildir "$dir" "$@" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$dir/.."
	inst=${dir#"$T"/dovecot/}
	inst=${inst%%/*}
	user=${dir%/Maildir}
	user=${user##*/}
	doveadm_cmd "$inst" force-resync -u "$user" '*'
}

# The mailbox tool: new messages over one connection, flag changes.
cat >"$T/tool.py" <<'PYEOF'
import imaplib, random, re, sys, time

port, user, pw, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, pw)
if cmd == "add":            # add FOLDER COUNT BODYBYTES TAG
    folder, n, size, tag = sys.argv[5], int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
    rnd = random.Random(tag)
    m.create(folder)
    for i in range(n):
        body = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(size))
        body = "\r\n".join(body[k:k + 76] for k in range(0, len(body), 76))
        msg = ("From: Compat <compat@example.com>\r\nTo: x@example.org\r\n"
               "Subject: %s %d\r\nDate: Tue, 5 Mar 2024 10:%02d:00 +0000\r\n"
               "Message-ID: <%s.%d@compat.test>\r\n\r\n%s\r\n"
               % (tag, i, i % 60, tag, i, body)).encode()
        flags = "(\\Seen)" if i % 3 == 0 else "()"
        typ, _ = m.append(folder, flags, imaplib.Time2Internaldate(1709632800 + i), msg)
        assert typ == "OK", typ
elif cmd == "setflags":     # setflags FOLDER COUNT SEED: print changed UIDs
    folder, n, seed = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    typ, _ = m.select(folder)
    assert typ == "OK", typ
    typ, data = m.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    for u in random.Random(seed).sample(uids, n):
        typ, data = m.uid("FETCH", u, "(FLAGS)")
        cur = re.search(rb"FLAGS \(([^)]*)\)", data[0]).group(1).decode().split()
        if "\\Seen" in cur:
            m.uid("STORE", u, "-FLAGS", "(\\Seen)")
            m.uid("STORE", u, "+FLAGS", "(\\Answered Changed)")
        else:
            m.uid("STORE", u, "+FLAGS", "(\\Seen \\Flagged Changed)")
        print(u.decode())
elif cmd == "size":         # size FOLDER: sum of RFC822.SIZE
    m.select(sys.argv[5], readonly=True)
    typ, data = m.fetch("1:*", "(RFC822.SIZE)")
    print(sum(int(x) for x in re.findall(rb"RFC822\.SIZE (\d+)", b" ".join(
        d if isinstance(d, bytes) else d[0] for d in data if d))))
m.logout()
PYEOF
tool() { "$LIB_PYTHON" "$T/tool.py" "$@"; }

# The proxy: forwards 127.0.0.1 connections to 127.0.0.1:UPSTREAM and
# records in STATS (JSON) the peak number of simultaneous connections and
# of simultaneous users (from LOGIN / AUTHENTICATE PLAIN).  With --strip
# it removes UIDPLUS (and COMPRESS=DEFLATE, which would hide the stream)
# from every capability list the server sends and the [APPENDUID ...] and
# [COPYUID ...] response codes, outside literals.
cat >"$T/proxy.py" <<'PYEOF'
import base64, json, os, re, select, socket, sys, threading

portfile, upstream, statsf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
strip = "--strip" in sys.argv[4:]
lock = threading.Lock()
active = {}          # id -> [client socket, user or None]
st = {"connections": 0, "peak": 0, "peak_users": 0, "users": [],
      "stripped_caps": 0, "stripped_codes": 0}
CAPLINE = re.compile(rb"^(\* |[^ ]+ )(OK \[CAPABILITY |CAPABILITY )", re.I)
CODE = re.compile(rb"^(\* OK |[^ *+]+ OK )\[(APPENDUID|COPYUID) [^\]]*\] ?", re.I)
LIT = re.compile(rb"\{(\d+)\+?\}\r\n$")

def save():
    with open(statsf + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(statsf + ".tmp", statsf)

def users_now():
    return len(set(u for _, u in active.values() if u))

def gone(cid):
    with lock:
        if active.pop(cid, None) is not None:
            save()

def reap():
    # connections whose client already closed (syncd closes before it
    # opens the next one; the owner thread may not have noticed yet)
    for cid, (c, _) in list(active.items()):
        try:
            if c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                del active[cid]
        except BlockingIOError:
            pass
        except OSError:
            del active[cid]

def fix(line):
    if CAPLINE.match(line):
        new = re.sub(rb" (UIDPLUS|COMPRESS=DEFLATE)(?=[ \]\r])", b"", line)
        if new != line:
            st["stripped_caps"] += 1
        return new
    new = CODE.sub(rb"\1", line)
    if new != line:
        st["stripped_codes"] += 1
    return new

def user_of(line, pending):
    m = re.match(rb"^[^ ]+ LOGIN \"?([^\" ]+)\"? ", line, re.I)
    if m:
        return m.group(1).decode(), False
    m = re.match(rb"^[^ ]+ AUTHENTICATE PLAIN ?([A-Za-z0-9+/=]*)\r\n$", line, re.I)
    if m and not m.group(1):
        return None, True
    if m or pending:
        raw = m.group(1) if m else line.strip()
        try:
            return base64.b64decode(raw).split(b"\0")[1].decode(), False
        except Exception:
            return None, False
    return None, False

def pipe(cid, c):
    s = socket.create_connection(("127.0.0.1", upstream))
    sbuf, lit = b"", 0           # server -> client, when stripping
    cbuf, pending = b"", False   # client -> server, until a user is known
    known = False
    try:
        while True:
            r, _, _ = select.select([c, s], [], [])
            if c in r:
                d = c.recv(65536)
                if not d:
                    return
                if not known:
                    cbuf += d
                    while b"\r\n" in cbuf and not known:
                        line, cbuf = cbuf.split(b"\r\n", 1)
                        u, pending = user_of(line + b"\r\n", pending)
                        if u:
                            known = True
                            with lock:
                                if cid in active:
                                    active[cid][1] = u
                                if u not in st["users"]:
                                    st["users"].append(u)
                                st["peak_users"] = max(st["peak_users"], users_now())
                                save()
                    if len(cbuf) > 8192:
                        known = True
                s.sendall(d)
            if s in r:
                d = s.recv(65536)
                if not d:
                    return
                if not strip:
                    c.sendall(d)
                    continue
                sbuf += d
                out = []
                while sbuf:
                    if lit:
                        k = min(lit, len(sbuf))
                        out.append(sbuf[:k])
                        sbuf, lit = sbuf[k:], lit - k
                        continue
                    i = sbuf.find(b"\r\n")
                    if i < 0:
                        break
                    line, sbuf = sbuf[:i + 2], sbuf[i + 2:]
                    with lock:
                        line = fix(line)
                    out.append(line)
                    m = LIT.search(line)
                    if m:
                        lit = int(m.group(1))
                if out:
                    c.sendall(b"".join(out))
    except OSError:
        pass
    finally:
        gone(cid)
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(64)
save()
with open(portfile + ".tmp", "w") as f:
    f.write(str(l.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
n = 0
while True:
    c, _ = l.accept()
    n += 1
    with lock:
        reap()
        active[n] = [c, None]
        st["connections"] += 1
        st["peak"] = max(st["peak"], len(active))
        save()
    threading.Thread(target=pipe, args=(n, c), daemon=True).start()
PYEOF

# start_proxy NAME UPSTREAM [--strip] - sets PROXY_PORT; stats in
# $T/NAME.stats
start_proxy() {
	local name=$1 up=$2 i
	shift 2
	spawn "proxy-$name" "$LIB_PYTHON" "$T/proxy.py" "$T/$name.port" "$up" \
		"$T/$name.stats" "$@"
	for ((i = 0; i < 200; i++)); do
		[ -s "$T/$name.port" ] && break
		sleep 0.05
	done
	PROXY_PORT=$(cat "$T/$name.port") && wait_port "$PROXY_PORT"
}

# pstat NAME EXPR - a Python expression over a proxy's statistics s
pstat() {
	"$LIB_PYTHON" -c 'import json, sys; s = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$T/$1.stats" "$2" 2>&1
}

# syncd_conf FILE STATE_DIR ACCOUNTS SRC_PORT DST_PORT [LINE...]
syncd_conf() {
	local f=$1 st=$2 acc=$3 sp=$4 dp=$5
	shift 5
	{
		cat <<EOF
[global]
state_dir = $st
log = stderr
log_level = debug

[syncd]
source = imap://127.0.0.1:$sp?tls=none
destination = imap://127.0.0.1:$dp?tls=none
accounts = $acc
tls_verify = no
EOF
		printf '%s\n' "$@"
	} >"$f"
}

# accounts FILE LINE... - an accounts file, mode 600
accounts() {
	local f=$1
	shift
	printf '%s\n' "$@" >"$f"
	chmod 600 "$f"
}

# --- 1. a destination without UIDPLUS --------------------------------------------------

check "source: 60 generated messages for alice in several folders" \
	fill "$T/dovecot/src/mail/alice/Maildir" 7 60
check "a proxy in front of the destination that hides UIDPLUS" \
	start_proxy nouidplus "$DST" --strip
NOUP=$PROXY_PORT
got=$(imap_cmd "$NOUP" bob pass CAPABILITY 2>&1 | tr -d '\r')
if grep -q '^\* CAPABILITY ' <<<"$got" && ! grep -qw UIDPLUS <<<"$got"; then
	ok "through the proxy CAPABILITY lists no UIDPLUS"
else
	not_ok "through the proxy CAPABILITY lists no UIDPLUS" "$got"
fi
accounts "$T/acc-u" "alice pass bob pass"
syncd_conf "$T/u.conf" "$T/state-u" "$T/acc-u" "$SRC" "$NOUP"

syncd u1 "$T/u.conf"
pass_ok u1 "no UIDPLUS: the first pass completes"
copied_is u1 60 "no UIDPLUS: the first pass copies the 60 messages"
if grep -q 'C: [^ ]* APPEND' "$T/log/syncd-u1.log" &&
	! grep -q 'APPENDUID' "$T/log/syncd-u1.log" &&
	[ "$(pstat nouidplus 's["stripped_codes"]')" -gt 0 ] 2>/dev/null; then
	ok "no APPENDUID reached ferry-syncd ($(pstat nouidplus 's["stripped_codes"]') stripped by the proxy)"
else
	not_ok "no APPENDUID reached ferry-syncd" \
		"stripped: $(pstat nouidplus 's["stripped_codes"]')" \
		"$(grep -m 3 'APPENDUID' "$T/log/syncd-u1.log")"
fi
if grep -qi 'C: [^ ]* UID SEARCH .*HEADER Message-ID' "$T/log/syncd-u1.log"; then
	ok "the copies were looked up by Message-ID on the destination"
else
	not_ok "the copies were looked up by Message-ID on the destination" \
		"$(grep -m 5 'C: [^ ]* .*SEARCH' "$T/log/syncd-u1.log")"
fi
same "no UIDPLUS: the destination holds every source message exactly once" \
	"$SRC" alice pass "$DST" bob pass

syncd u2 "$T/u.conf"
pass_ok u2 "no UIDPLUS: the second pass completes"
copied_is u2 0 "no UIDPLUS: the second pass copies nothing"

# Flags first: the 4 changed messages are old ones, copied by pass u1.
add_and_flag() {
	tool "$SRC" alice pass setflags INBOX 4 21 >"$T/u-flagged" &&
		tool "$SRC" alice pass add INBOX 5 300 compat-delta
}
check "source: flags changed on 4 INBOX messages, 5 new ones" add_and_flag
syncd u3 "$T/u.conf"
pass_ok u3 "no UIDPLUS: the delta pass completes"
copied_is u3 5 "no UIDPLUS: the delta pass copies exactly the 5 new messages"
same "no UIDPLUS: after the delta every message is there once, flag changes applied to the mapped copies" \
	"$SRC" alice pass "$DST" bob pass
if grep -q 'alice: INBOX: flags changed on 4 message' "$T/log/syncd-u3.log"; then
	ok "no UIDPLUS: the 4 flag changes were applied through the map"
else
	not_ok "no UIDPLUS: the 4 flag changes were applied through the map" \
		"$(grep 'flags changed\|alice: INBOX' "$T/log/syncd-u3.log" | grep -v ' C: \| S: ')"
fi
# The control for case 2: with CONDSTORE on the source the delta's flag
# look is a CHANGEDSINCE fetch.
if grep -q 'C: [^ ]* UID FETCH .*CHANGEDSINCE' "$T/log/syncd-u3.log"; then
	ok "control: against a source with CONDSTORE the delta asks CHANGEDSINCE"
else
	not_ok "control: against a source with CONDSTORE the delta asks CHANGEDSINCE" \
		"$(grep -m 5 'C: [^ ]* UID FETCH' "$T/log/syncd-u3.log")"
fi
syncd u4 "$T/u.conf"
pass_ok u4 "no UIDPLUS: a third pass completes"
copied_is u4 0 "no UIDPLUS: a third pass copies nothing (the state maps the copies)"
same "no UIDPLUS: still no duplicate on the destination" "$SRC" alice pass "$DST" bob pass

# --- 2. a source without CONDSTORE -------------------------------------------------------

fill_carol() {
	fill "$T/dovecot/nc/mail/carol/Maildir" 11 40 --folder INBOX &&
		fill "$T/dovecot/nc/mail/carol/Maildir" 11 15 --start 100 --folder Work
}
check "source without CONDSTORE: 55 messages for carol" fill_carol
accounts "$T/acc-n" "carol pass dave pass"
syncd_conf "$T/n.conf" "$T/state-n" "$T/acc-n" "$NC" "$DST"
syncd n1 "$T/n.conf"
pass_ok n1 "no CONDSTORE: the full pass completes"
copied_is n1 55 "no CONDSTORE: the full pass copies the 55 messages"
same "no CONDSTORE: the destination holds the source" "$NC" carol pass "$DST" dave pass

flag_carol() { tool "$NC" carol pass setflags INBOX 10 5 >"$T/n-flagged"; }
check "flags changed on 10 source messages in INBOX" flag_carol
digest "$NC" carol pass >"$T/n.src"
digest "$DST" dave pass >"$T/n.dst"
nd=$(diff "$T/n.src" "$T/n.dst" | grep -c '^<')
if [ "$nd" = 10 ]; then
	ok "before the delta 10 messages differ in their flags"
else
	not_ok "before the delta 10 messages differ in their flags" "$nd differ"
fi
syncd n2 "$T/n.conf"
pass_ok n2 "no CONDSTORE: the delta pass completes"
copied_is n2 0 "no CONDSTORE: the delta pass copies nothing again"
same "no CONDSTORE: the 10 flag changes are on the destination, nothing else differs" \
	"$NC" carol pass "$DST" dave pass
if grep -q 'flags changed on 10 message' "$T/log/syncd-n2.log"; then
	ok "no CONDSTORE: the 10 changes were applied as flag changes"
else
	not_ok "no CONDSTORE: the 10 changes were applied as flag changes" \
		"$(grep -i 'flags' "$T/log/syncd-n2.log" | grep -v ' C: \| S: ' | head -n 5)"
fi
# The debug log shows every command (" src:carol: C: TAG ..."): the
# flag look must be a plain UID FETCH FLAGS of the old UIDs.
grep -h ' src:carol: C: ' "$T/log/syncd-n1.log" "$T/log/syncd-n2.log" >"$T/n-src-cmds"
if grep -q 'C: [^ ]* UID FETCH 1:[0-9]* (UID FLAGS)' "$T/n-src-cmds" &&
	! grep -qi 'CHANGEDSINCE\|(CONDSTORE)\|ENABLE.*CONDSTORE' "$T/n-src-cmds"; then
	ok "no CONDSTORE: a full flags scan, no CHANGEDSINCE, SELECT (CONDSTORE) or ENABLE CONDSTORE"
else
	not_ok "no CONDSTORE: a full flags scan, no CHANGEDSINCE, SELECT (CONDSTORE) or ENABLE CONDSTORE" \
		"$(grep -i 'FETCH\|CONDSTORE' "$T/n-src-cmds" | grep -v 'BODY.PEEK\[\]' | head -n 6)"
fi
syncd n3 "$T/n.conf"
copied_is n3 0 "no CONDSTORE: the next pass copies nothing either"

# --- 3. four accounts, parallel = 2, connections_per_server = 4 -----------------------------

fill_four() {
	local i
	for i in 1 2 3 4; do
		fill "$T/dovecot/src/mail/a$i/Maildir" "$((20 + i))" 30 || return 1
	done
}
check "source: 30 generated messages each for a1..a4" fill_four
check "a counting proxy in front of the source" start_proxy psrc "$SRC"
PSRC=$PROXY_PORT
check "a counting proxy in front of the destination" start_proxy pdst "$DST"
PDST=$PROXY_PORT
accounts "$T/acc-p" "a1 p1 b1 q1" "a2 p2 b2 q2" "a3 p3 b3 q3" "a4 p4 b4 q4"
syncd_conf "$T/p.conf" "$T/state-p" "$T/acc-p" "$PSRC" "$PDST" \
	"parallel = 2" "connections_per_server = 4"
syncd p1 "$T/p.conf"
pass_ok p1 "parallel: the pass over 4 accounts completes"
got=$(py '(len(accounts), sorted(a["source_user"] for a in accounts), [a["error"] for a in accounts if a["error"]], j["totals"]["copied"])' \
	"$T/p1.json" 2>&1)
if [ "$got" = "(4, ['a1', 'a2', 'a3', 'a4'], [], 120)" ]; then
	ok "parallel: the report lists the 4 accounts, none failed, 120 copied"
else
	not_ok "parallel: the report lists the 4 accounts, none failed, 120 copied" "got: $got"
fi
got=$(py '[a["source_user"] for a in accounts if not all(f["complete"] for f in a["folders"])]' \
	"$T/p1.json" 2>&1)
if [ "$got" = "[]" ]; then
	ok "parallel: every folder of every account is complete"
else
	not_ok "parallel: every folder of every account is complete" "incomplete: $got"
fi
for i in 1 2 3 4; do
	same "parallel: b$i holds a$i exactly" "$SRC" "a$i" "p$i" "$DST" "b$i" "q$i"
done
ps=$(pstat psrc 's["peak"]')
pd=$(pstat pdst 's["peak"]')
pu=$(pstat psrc 's["peak_users"]')
us=$(pstat psrc 'sorted(s["users"])')
if [ "$ps" -le 4 ] 2>/dev/null && [ "$pd" -le 4 ] 2>/dev/null; then
	ok "connections_per_server = 4: at most $ps at once to the source, $pd to the destination"
else
	not_ok "connections_per_server = 4: at most 4 connections to either server at once" \
		"source peak $ps, destination peak $pd" \
		"$(cat "$T/psrc.stats")" "$(cat "$T/pdst.stats")"
fi
if [ "$pu" = 2 ] && [ "$us" = "['a1', 'a2', 'a3', 'a4']" ]; then
	ok "parallel = 2: the 4 accounts ran two at a time, never more"
else
	not_ok "parallel = 2: the 4 accounts ran two at a time, never more" \
		"peak simultaneous accounts $pu, accounts seen $us"
fi
syncd p2 "$T/p.conf"
pass_ok p2 "parallel: the second pass completes"
copied_is p2 0 "parallel: the second pass copies nothing"

# The connection limit binding: 4 accounts allowed at once, 2 connections
# per server, so two accounts wait for a pair to come free.
start_qproxies() {
	start_proxy qsrc "$SRC" && QSRC=$PROXY_PORT &&
		start_proxy qdst "$DST" && QDST=$PROXY_PORT
}
check "fresh counting proxies for the second configuration" start_qproxies
accounts "$T/acc-q" "a1 p1 c1 q1" "a2 p2 c2 q2" "a3 p3 c3 q3" "a4 p4 c4 q4"
syncd_conf "$T/q.conf" "$T/state-q" "$T/acc-q" "$QSRC" "$QDST" \
	"parallel = 4" "connections_per_server = 2"
syncd q1 "$T/q.conf"
pass_ok q1 "parallel = 4, connections_per_server = 2: the pass completes"
got=$(py '(len(accounts), [a["error"] for a in accounts if a["error"]], j["totals"]["copied"])' \
	"$T/q1.json" 2>&1)
if [ "$got" = "(4, [], 120)" ]; then
	ok "connections_per_server = 2: 4 accounts in the report, none failed, 120 copied"
else
	not_ok "connections_per_server = 2: 4 accounts in the report, none failed, 120 copied" "got: $got"
fi
for i in 1 2 3 4; do
	same "connections_per_server = 2: c$i holds a$i exactly" "$SRC" "a$i" "p$i" "$DST" "c$i" "q$i"
done
ps=$(pstat qsrc 's["peak"]')
pd=$(pstat qdst 's["peak"]')
n=$(pstat qsrc 's["connections"]')
if [ "$ps" -le 2 ] 2>/dev/null && [ "$pd" -le 2 ] 2>/dev/null && [ "$n" -ge 4 ] 2>/dev/null; then
	ok "connections_per_server = 2: $n connections, at most $ps at once to the source, $pd to the destination"
else
	not_ok "connections_per_server = 2: never more than 2 connections to a server at once" \
		"source peak $ps ($n connections), destination peak $pd" \
		"$(cat "$T/qsrc.stats")" "$(cat "$T/qdst.stats")"
fi

# --- 4. rate limits -----------------------------------------------------------------------

check "source: 12 messages of about 50 KB for r1" \
	tool "$SRC" r1 pass add INBOX 12 50000 compat-bytes
total=$(tool "$SRC" r1 pass size INBOX)
accounts "$T/acc-r" "r1 pass r2 pass"
syncd_conf "$T/rb.conf" "$T/state-r" "$T/acc-r" "$SRC" "$DST" \
	"max_bytes_per_second = 150000"
syncd rb "$T/rb.conf"
pass_ok rb "max_bytes_per_second: the pass completes"
copied_is rb 12 "max_bytes_per_second: the 12 messages are copied"
# At most 150000 bytes a second: the last batch (at most one second's
# worth) may go out at once, everything before it waits.
min_ms=$(((total - 150000) * 1000 / 150000))
if [ "$total" -ge 550000 ] 2>/dev/null && [ "$SYNCD_MS" -ge "$min_ms" ]; then
	ok "max_bytes_per_second = 150000: $total bytes took ${SYNCD_MS} ms (at least ${min_ms})"
else
	not_ok "max_bytes_per_second = 150000: $total bytes take at least ${min_ms} ms" \
		"took ${SYNCD_MS} ms"
fi
same "max_bytes_per_second: the destination holds every message, complete" \
	"$SRC" r1 pass "$DST" r2 pass

check "source: 30 small messages in Rate for r1" \
	tool "$SRC" r1 pass add Rate 30 200 compat-msgs
syncd_conf "$T/rm.conf" "$T/state-r" "$T/acc-r" "$SRC" "$DST" \
	"max_messages_per_second = 10"
syncd rm "$T/rm.conf"
pass_ok rm "max_messages_per_second: the delta pass completes"
copied_is rm 30 "max_messages_per_second: the 30 new messages are copied"
if [ "$SYNCD_MS" -ge 2000 ]; then
	ok "max_messages_per_second = 10: 30 messages took ${SYNCD_MS} ms (at least 2000)"
else
	not_ok "max_messages_per_second = 10: 30 messages take at least 2000 ms" \
		"took ${SYNCD_MS} ms"
fi
same "max_messages_per_second: the destination holds every message, complete" \
	"$SRC" r1 pass "$DST" r2 pass

done_testing
