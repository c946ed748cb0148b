#!/bin/bash
# test_syncd.sh - ferry-syncd's sync engine (syncd/sync.c, state.c,
# main.c) against two real Dovecot instances: a source with "." as the
# hierarchy separator and a destination with "/" and a \Sent special-use
# folder "Sent".  The source holds nested folders, a non-ASCII folder,
# "Sent Items", messages with system flags, keywords, old INTERNALDATEs
# and one without a Message-ID.  Checked: --dry-run writes nothing; a
# full --once copies everything (counts, flags, INTERNALDATEs and body
# hashes compared on both sides; Sent Items lands in Sent; subscriptions
# mirrored); a second --once copies nothing; after 30 new messages and
# 10 flag changes a delta pass copies exactly those 30 and applies the
# 10 changes; the progress record; --account; the JSON report.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot "$LIB_PYTHON"

[ -x "$FERRY_SYNCD" ] || {
	echo "Bail out! $FERRY_SYNCD not built"
	exit 1
}

DOVECOT_NAME=src DOVECOT_SEP=. check "source dovecot starts (separator .)" \
	start_dovecot alice:pa55 bob:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
DOVECOT_NAME=dst DOVECOT_SEP=/ DOVECOT_SPECIAL_USE='Sent=\Sent;Trash=\Trash' \
	check "destination dovecot starts (separator /, special-use Sent)" \
	start_dovecot alice2:pw2 bob:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}

# --- the mailbox tool ------------------------------------------------------------------
cat >"$T/mbox.py" <<'PYEOF'
import hashlib, imaplib, json, random, re, sys, time

def login(port, user, pw):
    m = imaplib.IMAP4("127.0.0.1", int(port))
    m.login(user, pw)
    return m

def folders(m):
    typ, data = m.list()
    out = []
    for line in data:
        if line is None:
            continue
        mm = re.match(rb'\((.*?)\) (NIL|"(.)") (.*)$', line)
        attrs, sep, name = mm.group(1).decode(), mm.group(3), mm.group(4)
        name = name.decode()
        if name.startswith('"'):
            name = name[1:-1]
        sep = sep.decode() if sep else None
        out.append((name, sep, attrs))
    return out

def q(name):
    return '"' + name.replace('\\', '\\\\').replace('"', '\\"') + '"'

KW = ["\\Seen", "\\Flagged", "\\Answered", "$Label1", "Projekt", "$Forwarded", "\\Draft"]

def gen(m, folder, n, seed, tag):
    rnd = random.Random(seed)
    m.create(q(folder))
    m.subscribe(q(folder))
    for i in range(n):
        flags = [f for f in KW if rnd.random() < 0.3]
        t = 946684800 + rnd.randrange(0, 700000000)
        size = rnd.choice([200, 2000, 20000, 150000])
        body = "".join(rnd.choice("abcdefghij klmnop\r\n") for _ in range(size))
        hdr = "From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\n" % (i, i)
        hdr += "Subject: %s %d\r\nDate: %s\r\n" % (tag, i, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t)))
        if not (i == 3 and tag.endswith("nomid")):
            hdr += "Message-ID: <%s.%d.%d@example.com>\r\n" % (tag, seed, i)
        msg = (hdr + "\r\n" + body + "\r\n").encode()
        d = imaplib.Time2Internaldate(t)
        typ, _ = m.append(q(folder), "(" + " ".join(flags) + ")", d, msg)
        assert typ == "OK", typ

def dump(m, sep):
    out = {}
    for name, s, attrs in folders(m):
        if "\\Noselect" in attrs or "\\NonExistent" in attrs:
            continue
        typ, _ = m.select(q(name), readonly=True)
        assert typ == "OK", (name, typ)
        path = name.replace(sep, "/") if sep else name
        msgs = []
        typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            fl = re.search(rb'FLAGS \(([^)]*)\)', head).group(1).decode().split()
            fl = sorted(f for f in fl if f != "\\Recent")
            idate = re.search(rb'INTERNALDATE "([^"]*)"', head).group(1).decode()
            t = time.mktime(imaplib.Internaldate2tuple(b'INTERNALDATE "' + idate.encode() + b'"'))
            msgs.append([hashlib.sha256(body).hexdigest(), int(t), fl])
        out[path] = sorted(msgs)
    return out

def subscribed(m, sep):
    typ, data = m.lsub()
    out = []
    for line in data:
        if line is None:
            continue
        mm = re.match(rb'\((.*?)\) (NIL|"(.)") (.*)$', line)
        name = mm.group(4).decode().strip('"')
        out.append(name.replace(sep, "/"))
    return sorted(out)

def setflags(m, folder, n, seed):
    rnd = random.Random(seed)
    m.select(q(folder))
    typ, data = m.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    chosen = rnd.sample(uids, n)
    for u in chosen:
        typ, data = m.uid("FETCH", u, "(FLAGS)")
        cur = re.search(rb'FLAGS \(([^)]*)\)', data[0]).group(1).decode().split()
        if "\\Seen" in cur:
            m.uid("STORE", u, "-FLAGS", "(\\Seen)")
            m.uid("STORE", u, "+FLAGS", "(Changed $Label2)")
        else:
            m.uid("STORE", u, "+FLAGS", "(\\Seen \\Flagged Changed)")

def uvchange(m, folder):
    """the same messages in a folder with a new UIDVALIDITY"""
    tmp = folder + "-tmp"
    m.create(q(tmp))
    m.select(q(folder))
    typ, _ = m.uid("COPY", "1:*", q(tmp))
    assert typ == "OK", typ
    m.close()
    typ, _ = m.delete(q(folder))
    assert typ == "OK", typ
    typ, _ = m.rename(q(tmp), q(folder))
    assert typ == "OK", typ

def expunge(m, folder, n):
    m.select(q(folder))
    typ, data = m.uid("SEARCH", None, "ALL")
    for u in data[0].split()[:n]:
        m.uid("STORE", u, "+FLAGS.SILENT", "(\\Deleted)")
    m.expunge()

def count(m, folder):
    typ, data = m.select(q(folder), readonly=True)
    return int(data[0])

cmd = sys.argv[4]
m = login(sys.argv[1], sys.argv[2], sys.argv[3])
if cmd == "gen":
    gen(m, sys.argv[5], int(sys.argv[6]), int(sys.argv[7]), sys.argv[8])
elif cmd == "dump":
    print(json.dumps(dump(m, sys.argv[5]), sort_keys=True))
elif cmd == "lsub":
    print("\n".join(subscribed(m, sys.argv[5])))
elif cmd == "setflags":
    setflags(m, sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
elif cmd == "uvchange":
    uvchange(m, sys.argv[5])
elif cmd == "expunge":
    expunge(m, sys.argv[5], int(sys.argv[6]))
elif cmd == "count":
    print(count(m, sys.argv[5]))
elif cmd == "folders":
    for name, s, attrs in folders(m):
        print(name)
m.logout()
PYEOF

SRC=(127.0.0.1 "$IMAP_PORT_src" alice pa55)
DST=(127.0.0.1 "$IMAP_PORT_dst" alice2 pw2)
mbox() { "$LIB_PYTHON" "$T/mbox.py" "$@"; }
msrc() { mbox "$IMAP_PORT_src" alice pa55 "$@"; }
mdst() { mbox "$IMAP_PORT_dst" alice2 pw2 "$@"; }

# compare SRCDUMP DSTDUMP - the destination holds exactly the source's
# messages, folder by folder, with "Sent Items" read as "Sent"
compare() {
	"$LIB_PYTHON" - "$1" "$2" <<'PYEOF'
import json, sys
src = json.load(open(sys.argv[1]))
dst = json.load(open(sys.argv[2]))
ren = {"Sent Items": "Sent"}
bad = 0
for f, msgs in src.items():
    d = ren.get(f, f)
    if d not in dst:
        print("missing folder %s (-> %s)" % (f, d)); bad = 1; continue
    if dst[d] != msgs:
        sm = set(json.dumps(x) for x in msgs); dm = set(json.dumps(x) for x in dst[d])
        print("folder %s: %d on source, %d on destination, %d differ" %
              (f, len(msgs), len(dst[d]), len(sm ^ dm)))
        for x in list(sm - dm)[:3]: print("  only src:", x[:160])
        for x in list(dm - sm)[:3]: print("  only dst:", x[:160])
        bad = 1
n = sum(len(v) for v in src.values())
print("compared %d messages in %d folders" % (n, len(src)))
sys.exit(bad)
PYEOF
}

# --- the source mailbox ---------------------------------------------------------------
seed() {
	msrc gen INBOX 40 1 inbox-nomid &&
		msrc gen "Sent Items" 15 2 sent &&
		msrc gen Archive 10 3 arch &&
		msrc gen Archive.2019 12 4 a2019 &&
		msrc gen Archive.2019.Q1 8 5 a2019q1 &&
		msrc gen 'Caf&AOk-' 9 6 cafe &&
		msrc gen 'Projekte.&ANw-bersicht' 6 7 proj
}
check "source mailbox generated (100 messages, 7 folders, nested, non-ASCII)" seed

cat >"$T/accounts" <<EOF
# src_user src_pass dst_user dst_pass
alice pa55 alice2 pw2
EOF
chmod 600 "$T/accounts"
mkconf() {
	cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/state
log = stderr
[syncd]
source = imaps://127.0.0.1:$IMAPS_PORT_src
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
ca_file = $TEST_CA
accounts = $T/accounts
parallel = 2
connections_per_server = 4
$1
EOF
}
mkconf ""

# SYNCD_WRAP="valgrind -q --leak-check=full --error-exitcode=99" runs
# every --once under valgrind (by hand; not in make check: too slow)
syncd() {
	timeout 180 ${SYNCD_WRAP:-} "$FERRY_SYNCD" -c "$T/syncd.conf" "$@"
}

# --- dry run ----------------------------------------------------------------------------
mdst folders | sort >"$T/dst-folders.before"
check "--dry-run --once exits 0" syncd --once --dry-run
cp "$CHECK_LOG" "$T/dry.log"
if grep -q "would copy\|100\b" "$T/dry.log" && [ ! -e "$T/state/db" ] &&
	mdst folders | sort | cmp -s - "$T/dst-folders.before"; then
	ok "--dry-run shows the plan and writes nothing (no state, no folder)"
else
	not_ok "--dry-run shows the plan and writes nothing (no state, no folder)" \
		"$(ls "$T/state" 2>&1)" "$(mdst folders)" "$(tail -n 20 "$T/dry.log")"
fi

if grep -q " copied=[1-9]" "$T/dry.log"; then
	not_ok "--dry-run never logs copied=N for what it did not copy" \
		"$(grep " copied=" "$T/dry.log" | head -3)"
elif grep -q " to_copy=[1-9].*(dry run)" "$T/dry.log"; then
	ok "--dry-run never logs copied=N for what it did not copy"
else
	not_ok "--dry-run never logs copied=N for what it did not copy" \
		"no to_copy= line: $(tail -n 5 "$T/dry.log")"
fi

# --- full pass -----------------------------------------------------------------------------
check "first --once copies the mailbox (exit 0)" syncd --once --json
cp "$CHECK_LOG" "$T/full.log"
jget() { # jget FILE EXPR - a value from the JSON report in a check log
	"$LIB_PYTHON" - "$1" "$2" <<'PYEOF'
import json, sys
text = open(sys.argv[1]).read()
start = text.index("{")
depth = 0
for i, ch in enumerate(text[start:], start):
    if ch == "{": depth += 1
    elif ch == "}":
        depth -= 1
        if depth == 0:
            end = i + 1; break
r = json.loads(text[start:end])
def tot(key):
    return sum(f.get(key, 0) or 0 for a in r["accounts"] for f in a["folders"])
print(eval(sys.argv[2]))
PYEOF
}

msrc dump . >"$T/src1.json"
mdst dump / >"$T/dst1.json"
check "counts, flags, INTERNALDATEs and body hashes match; Sent Items in Sent" \
	compare "$T/src1.json" "$T/dst1.json"
check_output "Sent Items was not created on the destination" "" \
	bash -c "$(declare -f mbox mdst); mdst folders | grep -x 'Sent Items' || true"
check_output "the report counts 100 copied" 100 jget "$T/full.log" 'tot("copied")'
if msrc lsub . >"$T/src.lsub" && mdst lsub / >"$T/dst.lsub" &&
	grep -qx "Archive/2019/Q1" "$T/dst.lsub" && grep -qx "Projekte/&ANw-bersicht" "$T/dst.lsub"; then
	ok "subscriptions mirrored"
else
	not_ok "subscriptions mirrored" "$(cat "$T/dst.lsub")"
fi

# --- a second pass copies nothing ---------------------------------------------------------
check "second --once exits 0" syncd --once --json
cp "$CHECK_LOG" "$T/second.log"
check_output "second --once copies nothing" 0 jget "$T/second.log" 'tot("copied")'
check_output "second --once: all 100 source messages already there" 100 \
	jget "$T/second.log" 'tot("already")'

# --- delta: 30 new, 10 flag changes ---------------------------------------------------------
delta_seed() {
	msrc setflags INBOX 6 15 &&
		msrc setflags Archive.2019.Q1 4 16 &&
		msrc gen INBOX 12 11 new-inbox &&
		msrc gen Archive.2019 8 12 new-2019 &&
		msrc gen 'Caf&AOk-' 5 13 new-cafe &&
		msrc gen "Sent Items" 5 14 new-sent
}
check "30 new messages and 10 flag changes on the source" delta_seed
check "delta --once exits 0" syncd --once --json
cp "$CHECK_LOG" "$T/delta.log"
check_output "the delta pass copies exactly the 30 new messages" 30 \
	jget "$T/delta.log" 'tot("copied")'
msrc dump . >"$T/src2.json"
mdst dump / >"$T/dst2.json"
check "after the delta: every message, flag and date matches" \
	compare "$T/src2.json" "$T/dst2.json"
if grep -q "flags changed on 6 message" "$T/delta.log" &&
	grep -q "flags changed on 4 message" "$T/delta.log"; then
	ok "the 10 flag changes were applied as changes"
else
	not_ok "the 10 flag changes were applied as changes" "$(grep -i flags "$T/delta.log")"
fi

# --- the progress record and the text report --------------------------------------------------
check "third --once (text report) exits 0" syncd --once
cp "$CHECK_LOG" "$T/third.log"
if grep -q "all 130 messages of the source are on the destination" "$T/third.log"; then
	ok "text report verdict: all 130 messages"
else
	not_ok "text report verdict: all 130 messages" "$(tail -n 8 "$T/third.log")"
fi
if [ -x "$FERRYCTL" ] && "$FERRYCTL" -c "$T/syncd.conf" sync --json >"$T/ctl.out" 2>&1; then
	if grep -q '"running": *false' "$T/ctl.out" || grep -q 'running' "$T/ctl.out"; then
		ok "ferryctl sync reads the progress record"
	else
		not_ok "ferryctl sync reads the progress record" "$(head -c 600 "$T/ctl.out")"
	fi
else
	skip "ferryctl sync reads the progress record" "ferryctl sync not available"
fi

# --- a new UIDVALIDITY on the source: the map is rebuilt by content ---------------------------
check "Café gets a new UIDVALIDITY on the source (copy, delete, rename)" msrc uvchange 'Caf&AOk-'
check "--once after the UIDVALIDITY change exits 0" syncd --once --json
cp "$CHECK_LOG" "$T/uv.log"
check_output "nothing copied again after the UIDVALIDITY change" 0 jget "$T/uv.log" 'tot("copied")'
if grep -q "UIDVALIDITY changed" "$T/uv.log"; then
	ok "the UIDVALIDITY change was noticed and the map rebuilt"
else
	not_ok "the UIDVALIDITY change was noticed and the map rebuilt" "$(grep Caf "$T/uv.log")"
fi
msrc dump . >"$T/src3.json"
mdst dump / >"$T/dst3.json"
check "after the UIDVALIDITY change: source and destination still match" \
	compare "$T/src3.json" "$T/dst3.json"

# --- daemon mode: a pass, delta passes every interval, SIGTERM ------------------------------------
mkconf "interval = 1s
pid_file = $T/syncd.pid"
"$FERRY_SYNCD" -c "$T/syncd.conf" -d >"$T/log/daemon.log" 2>&1 &
dpid=$!
at_exit "kill $dpid 2>/dev/null"
check "3 new messages while the daemon runs" msrc gen INBOX 3 21 daemon
daemon_caught_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(mdst count INBOX)" = 55 ] && return 0
		sleep 0.2
	done
	return 1
}
check "the daemon's delta pass copies them" daemon_caught_up
# Between passes the daemon stays logged in: later passes log in again
# only when the server closed the connection meanwhile.  The pass that
# copied the 3 examined INBOX; were it still selected on the kept
# connection, Dovecot's LIST-STATUS would show the old view of it and
# the next 3 would never be seen.
daemon_count() {	# daemon_count N - wait until INBOX holds N
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(mdst count INBOX)" = "$1" ] && return 0
		sleep 0.2
	done
	return 1
}
check "3 more messages, after a pass that examined INBOX" \
	msrc gen INBOX 3 22 daemon2
check "a later pass on the kept connections copies them" daemon_count 58
daemon_passes() {	# daemon_passes N - wait until pass N is done
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q "pass $1: done" "$T/log/daemon.log" && return 0
		sleep 0.2
	done
	return 1
}
logins() { grep -c "logged in as" "$T/log/daemon.log"; }
if daemon_passes 3 && [ "$(logins)" = 2 ]; then
	ok "passes 2 and 3 reuse the connections of pass 1 (2 logins in all)"
else
	not_ok "passes 2 and 3 reuse the connections of pass 1 (2 logins in all)" \
		"$(grep -E "logged in|pass [0-9]+: done" "$T/log/daemon.log")"
fi
doveadm_cmd src kick alice >/dev/null 2>&1
check "3 more messages after the server closed the kept source connection" \
	msrc gen INBOX 3 24 kicked
check "the next pass logs in again and copies them" daemon_count 61
if [ "$(logins)" = 3 ]; then
	ok "only the closed source connection was opened again"
else
	not_ok "only the closed source connection was opened again" \
		"$(grep -E "logged in|closed|pass [0-9]+: done" "$T/log/daemon.log")"
fi
if [ -s "$T/syncd.pid" ] && [ "$(cat "$T/syncd.pid")" = "$dpid" ]; then
	ok "the daemon wrote its pid file"
else
	not_ok "the daemon wrote its pid file" "$(cat "$T/syncd.pid" 2>&1)"
fi
# The source's imap process of the kept connection stops answering: the
# LOGOUT at exit must not wait for it (120 s timeout) but hang up.
spid=$(doveadm_cmd src who -1 alice 2>/dev/null | awk '$2 == "imap" { print $3; exit }')
[ -z "$spid" ] || kill -STOP "$spid"
kill -TERM "$dpid"
for ((i = 0; i < 300; i++)); do
	kill -0 "$dpid" 2>/dev/null || break
	sleep 0.1
done
[ -z "$spid" ] || kill -CONT "$spid"
drc=0
wait "$dpid" || drc=$?
if [ $i -lt 300 ] && [ "$drc" = 0 ] && [ ! -e "$T/syncd.pid" ] &&
	grep -q "stopping on signal" "$T/log/daemon.log"; then
	ok "SIGTERM with a source that stopped answering: clean exit within 30 s, pid file removed"
else
	not_ok "SIGTERM with a source that stopped answering: clean exit within 30 s, pid file removed" \
		"exit $drc, waited $i/300, imap pid ${spid:-none}" "$(tail -n 5 "$T/log/daemon.log")"
fi
if mdb_dump -p -s meta "$T/state/db" 2>/dev/null | grep -q '"mode":"daemon".*"last_pass":{'; then
	ok "the progress record (META syncd.progress) names the daemon and its last pass"
elif ! command -v mdb_dump >/dev/null; then
	skip "the progress record (META syncd.progress)" "no mdb_dump"
else
	not_ok "the progress record (META syncd.progress) names the daemon and its last pass" \
		"$(mdb_dump -p -s meta "$T/state/db" 2>&1 | head -c 800)"
fi
mkconf ""

# --- rate limit, deletions ----------------------------------------------------------------------
check "20 new messages in Archive.2020" msrc gen Archive.2020 20 31 rate
mkconf "max_messages_per_second = 10"
t0=$(date +%s%N)
check "--once with max_messages_per_second = 10 exits 0" syncd --once
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
if [ "$ms" -ge 1500 ] && [ "$(mdst count Archive/2020)" = 20 ]; then
	ok "the message rate limit holds (20 messages in ${ms} ms)"
else
	not_ok "the message rate limit holds" "20 messages in ${ms} ms, $(mdst count Archive/2020) on the destination"
fi
check "a message of the destination's own in Archive/2020" mdst gen Archive/2020 1 32 dstonly
check "5 messages deleted on the source" msrc expunge Archive.2020 5
mkconf "delete = yes"
check "--once with delete = yes exits 0" syncd --once
check_output "delete = yes: the 5 copies go, the destination's own message stays" 16 \
	mdst count Archive/2020
mkconf ""

# --- --account with an unknown user: usage error --------------------------------------------------
check_output "--account with an unknown user exits 2" 2 \
	bash -c "timeout 20 '$FERRY_SYNCD' -c '$T/syncd.conf' --once --account nobody >/dev/null 2>&1; echo \$?"

done_testing
