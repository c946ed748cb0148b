#!/bin/bash
# test_relay_waves.sh - staged waves and rollback in ferry-relay's
# routing, with smtp-sink as the new provider (upstream) and as the old
# host (copy_to, dual reception):
#   - bad input: wave=0 and wave=abc in the accounts file, waves without
#     copy_to: ferry-relay -t and the start refuse them with file:line;
#     ferryctl wave with an unknown wave, a bad number or action: exit 2,
#     nothing written, nothing logged by the relay;
#   - before any change every wave is pending: a recipient in a wave
#     goes to copy_to only, one without a wave to both, as before;
#   - under load (two senders, each message to a wave 1, a wave 2 and a
#     no-wave recipient) `ferryctl wave 1 migrate` happens: every message
#     reaches copy_to once with all three; the upstream gets each once,
#     the wave 1 recipient exactly when the relay routed it there (never
#     before the change began, always after it returned), the wave 2
#     recipient never; nothing is lost;
#   - ferryctl wave, status and status --json show the states;
#   - a domain whose cutover record is in rollback goes to copy_to only,
#     whatever its recipients' waves; back to dual-reception, upstream
#     again; the no-ledger rule: a recipient routed to the old host has
#     no ledger entry;
#   - copy_to answering 5xx for a recipient it alone was to get: the
#     sender gets a DSN naming that recipient only;
#   - ferry-syncd --wave N copies that wave's accounts only; a migrated
#     wave's destination is live (the old host's flags no longer pushed
#     there), a pending wave's is not; an unknown
#     or malformed wave is a usage error (exit 2).
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink mdb_dump mdb_stat "$LIB_PYTHON"
CUTOVER_PUT=$top_builddir/tests/integration/cutover_put

plan 44

STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$STATE" "$T/msg"
RELAY_LOG=$T/log/relay.log

SINK_NAME=main start_smtp_sink || exit 1
SINK_NAME=copy start_smtp_sink || exit 1
SINK_NAME=dsn start_smtp_sink || exit 1

# write_conf FILE ACCOUNTS [COPY] - the relay's configuration
write_conf() {
	cat >"$1" <<EOF
[global]
state_dir = $STATE
[relay]
listen = 127.0.0.1:$PORT
hostname = relay.test
domains = example.test, rb.test
accounts = $2
[forward]
upstream = 127.0.0.1:$SINK_PORT_main
${3-copy_to = 127.0.0.1:$SINK_PORT_copy}
dsn_relay = 127.0.0.1:$SINK_PORT_dsn
tls = none
retry_initial = 1s
retry_max = 2s
[checks]
spf = off
dkim = off
[control]
socket = $T/control.sock
http = 127.0.0.1:$HTTP_PORT
EOF
}

cat >"$T/accounts" <<'EOF'
# staged waves
w1@example.test  pw1  w1@example.test  pw1  wave=1
w2@example.test  pw2  w2@example.test  pw2  wave=2
free@example.test pw3 free@example.test pw3
rb1@rb.test      pw4  rb1@rb.test      pw4  wave=1
EOF
chmod 600 "$T/accounts"

# --- bad input ---------------------------------------------------------------
printf 'a@example.test p a@example.test p\nb@example.test p b@example.test p wave=0\n' >"$T/acc-zero"
printf 'a@example.test p a@example.test p wave=abc\n' >"$T/acc-abc"
write_conf "$T/zero.conf" "$T/acc-zero"
write_conf "$T/abc.conf" "$T/acc-abc"
write_conf "$T/nocopy.conf" "$T/accounts" ""
bad_conf() {	# bad_conf CONF REGEX - -t exits 2 with REGEX on stderr
	local out rc
	out=$("$FERRY_RELAY" -t -c "$1" 2>&1)
	rc=$?
	echo "$out"
	[ "$rc" -eq 2 ] && grep -qE "$2" <<<"$out"
}
check "wave=0 in the accounts file: ferry-relay -t exit 2 with file:line" \
	bad_conf "$T/zero.conf" "acc-zero:2: .*wave"
check "wave=abc: exit 2 with file:line" \
	bad_conf "$T/abc.conf" "acc-abc:1: .*wave"
check "waves without [forward] copy_to: exit 2, the account's file:line" \
	bad_conf "$T/nocopy.conf" "accounts:2: .*wave 1.*copy_to"
write_conf "$T/missing.conf" "$T/no-such-accounts"
check "[relay] accounts naming a file that is not there: exit 2" \
	bad_conf "$T/missing.conf" "no-such-accounts: No such file"
# a fresh install: the [syncd] accounts the relay would fall back to is
# not written yet; the relay needs none, so it starts without waves
write_conf "$T/fresh.conf" ""
printf '[syncd]\naccounts = %s\n' "$T/no-such-accounts" >>"$T/fresh.conf"
check "[syncd] accounts not there yet: -t passes, and says there are no waves" eval \
	"'$FERRY_RELAY' -t -c '$T/fresh.conf' >'$T/fresh.out' 2>&1 && grep -q 'does not exist (yet): no routing by wave' '$T/fresh.out'"
write_conf "$T/relay.conf" "$T/accounts"
check "the good configuration passes -t" "$FERRY_RELAY" -t -c "$T/relay.conf"

spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
RELAY_PID=$SPAWN_PID
check "ferry-relay starts" wait_port "$PORT" 10

ctl() { "$FERRYCTL" -c "$T/relay.conf" "$@"; }
# bad_ctl REGEX ARGS... - ferryctl exits 2 with REGEX on stderr
bad_ctl() {
	local re=$1 out rc
	shift
	out=$(ctl "$@" 2>&1)
	rc=$?
	echo "$out"
	[ "$rc" -eq 2 ] && grep -qE -e "$re" <<<"$out"
}
check "ferryctl wave 7 migrate (no account in it): exit 2, clear error" \
	bad_ctl "wave 7: unknown: no account of .*accounts is in it \(waves: 1, 2\)" \
	wave 7 migrate
check "ferryctl wave 0 / 1000 / abc: exit 2" eval \
	'bad_ctl "bad wave" wave 0 migrate && bad_ctl "bad wave" wave 1000 migrate && bad_ctl "bad wave" wave abc pending'
check "ferryctl wave 1 frobnicate: exit 2" bad_ctl "unknown action" wave 1 frobnicate
check "ferryctl wave 1: exit 2 (N needs an action)" bad_ctl "wave takes" wave 1
check "the relay itself refuses an unknown wave" eval \
	"printf 'wave 7 migrate\n' | $LIB_PYTHON -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read()); r = s.recv(4096).decode()
print(r); sys.exit(0 if r.startswith(\"error unknown wave 7\") else 1)' $T/control.sock"
check_output "nothing was written: no routing record in LMDB" 0 \
	eval "mdb_dump -s meta -p '$STATE/db' 2>/dev/null | grep -c 'route\\.wave' || true"
check_output "nothing was logged as a change" 0 \
	eval "grep -c 'wave [0-9]*: .* -> ' '$RELAY_LOG' || true"

waves_json() { ctl --json wave; }
check "ferryctl wave: waves 1 and 2, both pending, with their accounts" eval \
	"waves_json | $LIB_PYTHON -c '
import json, sys
w = json.load(sys.stdin)[\"waves\"]
assert [(x[\"wave\"], x[\"state\"], x[\"accounts\"], x[\"since\"]) for x in w] == \
    [(1, \"pending\", 2, None), (2, \"pending\", 1, None)], w'"

# --- pending: to copy_to only --------------------------------------------------
# mkmsg NAME SEQ - a small message
mkmsg() {
	printf 'From: <s@origin.test>\nTo: <w@example.test>\nSubject: wave %s\nMessage-ID: <%s@origin.test>\nX-Seq: %s\n\nbody %s\n' \
		"$2" "$2.$$" "$2" "$2" >"$T/msg/$1.eml"
}
send1() {	# send1 RCPTS NAME
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$PORT" s@origin.test "$1" \
		"$T/msg/$2.eml" | tail -n 1
}
mkmsg first first
check "one message to w1, w2, free is accepted" eval \
	'send1 w1@example.test,w2@example.test,free@example.test first | grep -q "^DATA 250"'

# rcpts_of DIR SEQ - the recipients of the sink files of message SEQ, one
# line per file, sorted
rcpts_of() {
	"$LIB_PYTHON" - "$1" "$2" <<'EOF'
import glob, os, re, sys
d, seq = sys.argv[1:3]
out = []
for f in glob.glob(os.path.join(d, "msg.*")):
    b = open(f, "rb").read()
    if not b or not re.search(rb"(?m)^X-Seq: " + re.escape(seq.encode()) + rb"\r?$", b):
        continue
    out.append(",".join(sorted(x.decode() for x in re.findall(rb"(?m)^X-Rcpt-Args: <([^>]*)>", b))))
print("\n".join(sorted(out)))
EOF
}
wait_rcpts() {	# wait_rcpts DIR SEQ WANT
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(rcpts_of "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	echo "$1 seq $2: '$(rcpts_of "$1" "$2")', wanted '$3'" >&2
	return 1
}
check "copy_to gets it once for all three" \
	wait_rcpts "$SINK_DIR_copy" first "free@example.test,w1@example.test,w2@example.test"
check "the upstream gets only free@ (no wave): w1, w2 are pending" \
	wait_rcpts "$SINK_DIR_main" first "free@example.test"
check "the relay logged the two routed to copy_to with their wave" eval \
	"grep -qE 'to=<w1@example.test>, route=copy_to \\(wave 1 not migrated\\)' '$RELAY_LOG' && grep -qE 'to=<w2@example.test>, route=copy_to \\(wave 2 not migrated\\)' '$RELAY_LOG'"
check_output "one ledger entry (free@): none for those routed to copy_to" 1 \
	eval "mdb_stat -s ledger '$STATE/db' | awk '/Entries:/ { print \$2 }'"

mkmsg alone alone
queue_empty() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(ctl --json queue | "$LIB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["count"])')" = 0 ] &&
			[ -z "$(ls -A "$STATE/spool/queue")" ] && return 0
		sleep 0.1
	done
	return 1
}
check "a message to w2@ alone: copy_to only, then nothing stays queued" eval \
	'send1 w2@example.test alone | grep -q "^DATA 250" &&
	wait_rcpts "$SINK_DIR_copy" alone "w2@example.test" && queue_empty &&
	[ -z "$(rcpts_of "$SINK_DIR_main" alone)" ]'

# --- wave 1 migrates under load -----------------------------------------------
cat >"$T/load.py" <<'EOF'
# load.py PORT N THREADS OUT - N messages to w1, w2, free over THREADS
# parallel senders; OUT gets "seq start end code queue_id" per message
import re, smtplib, sys, threading, time
port, n, k, outp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows, lock = [], threading.Lock()
def worker(t):
    for i in range(t, n, k):
        seq = "L%04d" % i
        msg = ("From: <s@origin.test>\r\nTo: <w@example.test>\r\n"
               "Subject: load %s\r\nMessage-ID: <%s.load@origin.test>\r\n"
               "X-Seq: %s\r\n\r\nbody %s\r\n" % (seq, seq, seq, seq))
        start = time.time()
        code, text = 0, b""
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                             timeout=60)
            s.ehlo()
            s.mail("s@origin.test")
            for r in ("w1@example.test", "w2@example.test", "free@example.test"):
                s.rcpt(r)
            code, text = s.data(msg.encode())
        except (OSError, smtplib.SMTPException) as e:
            print("%s: %r" % (seq, e), file=sys.stderr)
        end = time.time()
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
        m = re.search(rb"queued as ([0-9a-f]{16})", text or b"")
        with lock:
            rows.append("%s %.6f %.6f %d %s" % (seq, start, end, code,
                        m.group(1).decode() if m else "-"))
ths = [threading.Thread(target=worker, args=(t,)) for t in range(k)]
for t in ths: t.start()
for t in ths: t.join()
open(outp, "w").write("\n".join(sorted(rows)) + "\n")
EOF
NLOAD=200
"$LIB_PYTHON" "$T/load.py" "$PORT" "$NLOAD" 2 "$T/load.out" &
LOAD_PID=$!
# let about a third go by, then migrate wave 1
for ((i = 0; i < 200; i++)); do
	[ "$(grep -c 'route=copy_to (wave 1' "$RELAY_LOG")" -ge 60 ] && break
	sleep 0.05
done
T_BEFORE=$(date +%s.%N)
ctl wave 1 migrate >"$T/migrate.out" 2>&1
MIGRATE_RC=$?
T_AFTER=$(date +%s.%N)
wait "$LOAD_PID"
check_output "ferryctl wave 1 migrate during the load" "0 wave 1 migrated" \
	echo "$MIGRATE_RC $(cat "$T/migrate.out")"
check "the relay logged who changed it and when" \
	grep -qE "wave 1: pending -> migrated \(2 account\(s\)\), by ferryctl \(uid [0-9]+, pid [0-9]+\)" "$RELAY_LOG"
check_output "all $NLOAD load messages accepted (250)" "$NLOAD" \
	awk '$4 == 250 { n++ } END { print n + 0 }' "$T/load.out"

cat >"$T/verify.py" <<'EOF'
# verify.py LOAD_OUT MAIN COPY LOG T_BEFORE T_AFTER - each message where
# its wave said when the relay routed it
import glob, os, re, sys
loadp, maind, copyd, logp = sys.argv[1:5]
t0, t1 = float(sys.argv[5]), float(sys.argv[6])
local = set(re.findall(r"([0-9a-f]{16}): to=<w1@example\.test>, route=copy_to",
                       open(logp).read()))
def sinks(d):
    got = {}
    for f in glob.glob(os.path.join(d, "msg.*")):
        b = open(f, "rb").read()
        m = re.search(rb"(?m)^X-Seq: (L\d+)\r?$", b)
        if not m:
            continue
        r = sorted(x.decode() for x in re.findall(rb"(?m)^X-Rcpt-Args: <([^>]*)>", b))
        got.setdefault(m.group(1).decode(), []).append(r)
    return got
main, copy = sinks(maind), sinks(copyd)
bad, before, after, between = [], 0, 0, 0
allr = ["free@example.test", "w1@example.test", "w2@example.test"]
for line in open(loadp):
    seq, start, end, code, qid = line.split()
    start, end = float(start), float(end)
    if copy.get(seq) != [allr]:
        bad.append("%s: copy_to got %r" % (seq, copy.get(seq)))
    routed_up = qid not in local
    want = [["free@example.test", "w1@example.test"]] if routed_up else \
        [["free@example.test"]]
    if main.get(seq) != want:
        bad.append("%s (%s): upstream got %r, wanted %r" % (seq, qid, main.get(seq), want))
    if end < t0:
        before += 1
        if routed_up:
            bad.append("%s: forwarded w1 before the change began" % seq)
    elif start > t1:
        after += 1
        if not routed_up:
            bad.append("%s: kept w1 local after the change returned" % seq)
    else:
        between += 1
print("before %d, during %d, after %d" % (before, between, after))
if before == 0 or after == 0:
    bad.append("the change did not happen under load")
print("\n".join(bad[:20]))
sys.exit(1 if bad else 0)
EOF
waves_settled() {
	local i
	for ((i = 0; i < 150; i++)); do
		"$LIB_PYTHON" "$T/verify.py" "$T/load.out" "$SINK_DIR_main" \
			"$SINK_DIR_copy" "$RELAY_LOG" "$T_BEFORE" "$T_AFTER" \
			>"$T/verify.out" 2>&1 && { cat "$T/verify.out"; return 0; }
		sleep 0.2
	done
	cat "$T/verify.out"
	return 1
}
check "each recipient went where its wave said when routed; none lost, w2 never upstream" \
	waves_settled
check "ferryctl wave: 1 migrated since now with who, 2 pending" eval \
	"waves_json | $LIB_PYTHON -c '
import json, sys
w = {x[\"wave\"]: x for x in json.load(sys.stdin)[\"waves\"]}
assert w[1][\"state\"] == \"migrated\" and w[1][\"since\"].endswith(\"Z\"), w
assert w[1][\"why\"].startswith(\"ferryctl wave 1 migrate (uid \"), w
assert w[2][\"state\"] == \"pending\" and w[2][\"since\"] is None, w'"
check "ferryctl status --json has the waves beside the domains" eval \
	"ctl --json status | $LIB_PYTHON -c '
import json, sys
d = json.load(sys.stdin)
assert \"domains\" in d, d
assert [(x[\"wave\"], x[\"state\"]) for x in d[\"waves\"]] == [(1, \"migrated\"), (2, \"pending\")], d'"
check "ferryctl status shows the waves table" eval \
	"ctl status | grep -qE '^1 +migrated +[0-9-]+ [0-9:]+ +2  ferryctl wave 1 migrate'"
check "ferryctl wave 1 migrate again: already so, nothing changed" eval \
	"ctl wave 1 migrate | grep -q 'already migrated'"

# --- rollback of a domain ---------------------------------------------------------
check "a rollback record for rb.test" "$CUTOVER_PUT" "$STATE" rb.test rollback
mkmsg rb1 rb1
check "a message to rb1@rb.test (wave 1, migrated) and free@" eval \
	'send1 rb1@rb.test,free@example.test rb1 | grep -q "^DATA 250"'
check "rollback: rb1@ goes to copy_to only, free@ upstream too" eval \
	'wait_rcpts "$SINK_DIR_copy" rb1 "free@example.test,rb1@rb.test" && wait_rcpts "$SINK_DIR_main" rb1 "free@example.test"'
check "the relay logged the rollback route" \
	grep -q "to=<rb1@rb.test>, route=copy_to (its domain is in rollback)" "$RELAY_LOG"
"$CUTOVER_PUT" "$STATE" rb.test dual-reception
mkmsg rb2 rb2
send1 rb1@rb.test rb2 >/dev/null
check "back to dual-reception: upstream again, no restart" \
	wait_rcpts "$SINK_DIR_main" rb2 "rb1@rb.test"

# --- copy_to refuses a recipient it alone was to get ----------------------------
# For a pending recipient copy_to is the only delivery, so its 5xx is the
# message's fate: the sender gets a DSN.  free@ was also forwarded
# upstream, so copy_to refusing its copy bounces nothing.
dsn_of() {	# dsn_of SEQ - the DSN files at dsn_relay about message SEQ
	grep -lE "^X-Seq: $1"$'\r'"?\$" "$SINK_DIR_dsn"/msg.* 2>/dev/null
}
wait_dsn() {	# wait_dsn SEQ RCPT
	local i
	for ((i = 0; i < 150; i++)); do
		dsn_of "$1" | xargs -r grep -l "$2" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}
stop_smtp_sink copy
SINK_NAME=copy start_smtp_sink -f RCPT || exit 1
mkmsg refused refused
check "copy_to answers 5xx: a message to w2@ (pending) and free@ is accepted" eval \
	'send1 w2@example.test,free@example.test refused | grep -q "^DATA 250"'
check "the sender gets a DSN for w2@, whose only delivery was copy_to" \
	wait_dsn refused 'w2@example.test'
check "the upstream got free@ alone, and nothing stays queued" eval \
	'wait_rcpts "$SINK_DIR_main" refused "free@example.test" && queue_empty'
check_output "one DSN for the message, and it names w2@ only" "1 0" eval \
	'echo "$(dsn_of refused | wc -l) $(dsn_of refused | xargs -r grep -c "free@example.test" | awk -F: "{ s += \$NF } END { print s + 0 }")"'
stop_smtp_sink copy
SINK_NAME=copy start_smtp_sink || exit 1

check "ferryctl --json wave 2 pending: ok, the wave and the relay's result" eval \
	"ctl --json wave 2 pending | $LIB_PYTHON -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"ok\"] is True and d[\"wave\"] == 2 and \"pending\" in d[\"result\"], d'"

# --- ferry-syncd --wave ------------------------------------------------------------
{
	cat "$T/relay.conf"
	printf '[syncd]\naccounts = %s\ntls_verify = no\n' "$T/accounts"
} >"$T/syncd.conf"
syncd_usage() {	# syncd_usage REGEX ARGS... - exit 2 with REGEX on stderr
	local re=$1 out rc
	shift
	out=$(timeout 20 "$FERRY_SYNCD" "$@" 2>&1)
	rc=$?
	echo "$out"
	[ "$rc" -eq 2 ] && grep -qE -e "$re" <<<"$out"
}
if command -v dovecot >/dev/null 2>&1 &&
	DOVECOT_NAME=src start_dovecot w1@example.test:pw1 w2@example.test:pw2 \
		free@example.test:pw3 rb1@rb.test:pw4 >/dev/null 2>&1 &&
	DOVECOT_NAME=dst start_dovecot w1@example.test:pw1 w2@example.test:pw2 \
		free@example.test:pw3 rb1@rb.test:pw4 >/dev/null 2>&1; then
	printf 'source = imap://127.0.0.1:%s?tls=none\ndestination = imap://127.0.0.1:%s?tls=none\n' \
		"$IMAP_PORT_src" "$IMAP_PORT_dst" >>"$T/syncd.conf"
	for u in w1@example.test:pw1 w2@example.test:pw2 free@example.test:pw3; do
		printf 'From: <s@origin.test>\r\nSubject: old %s\r\nMessage-ID: <old.%s@origin.test>\r\n\r\nold mail\r\n' \
			"${u%%:*}" "${u%%:*}" >"$T/msg/old.eml"
		imap_append "$IMAP_PORT_src" "${u%%:*}" "${u#*:}" INBOX "$T/msg/old.eml" >/dev/null
	done
	check "ferry-syncd --once --wave 2 copies wave 2's accounts only" eval \
		"timeout 60 '$FERRY_SYNCD' -c '$T/syncd.conf' --once --wave 2 >'$T/log/syncd-wave.log' 2>&1 &&
		[ \"\$(imap_count $IMAP_PORT_dst w2@example.test pw2 INBOX)\" = 1 ] &&
		[ \"\$(imap_count $IMAP_PORT_dst w1@example.test pw1 INBOX)\" = 0 ] &&
		[ \"\$(imap_count $IMAP_PORT_dst free@example.test pw3 INBOX)\" = 0 ]"
	# wave 1 is migrated (above): its users read mail on the new host
	# now, so the old host's flags are no longer pushed there; wave 2 is
	# pending and still gets them
	dflags() { doveadm_cmd dst fetch -u "$1" flags mailbox INBOX all 2>/dev/null; }
	live_flags() {
		timeout 60 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --wave 1 \
			>"$T/log/syncd-w1.log" 2>&1 &&
			[ "$(imap_count "$IMAP_PORT_dst" w1@example.test pw1 INBOX)" = 1 ] &&
			doveadm_cmd src flags add -u w1@example.test '\Flagged' mailbox INBOX all &&
			doveadm_cmd src flags add -u w2@example.test '\Flagged' mailbox INBOX all &&
			timeout 60 "$FERRY_SYNCD" -c "$T/syncd.conf" --once \
				>"$T/log/syncd-flags.log" 2>&1
		case $(dflags w2@example.test) in *Flagged*) ;; *) return 1 ;; esac
		case $(dflags w1@example.test) in *Flagged*) return 1 ;; esac
	}
	check "a flag set on the old host reaches wave 2 (pending), not wave 1 (migrated: the destination is live)" \
		live_flags
else
	printf 'source = imap://127.0.0.1:%s?tls=none\ndestination = imap://127.0.0.1:%s?tls=none\n' \
		"$(free_port)" "$(free_port)" >>"$T/syncd.conf"
	skip "ferry-syncd --once --wave 2 copies wave 2's accounts only" "no Dovecot"
	skip "a flag set on the old host reaches wave 2 (pending), not wave 1 (migrated: the destination is live)" "no Dovecot"
fi
check "ferry-syncd --wave 7 (no account in it): exit 2, clear error" \
	syncd_usage "--wave 7: unknown wave: no account of .*accounts is in it" \
	-c "$T/syncd.conf" -t --wave 7
check "ferry-syncd --wave 0 / abc / 1000: exit 2" eval \
	'syncd_usage "want a wave from 1 to 999" -c "$T/syncd.conf" --once --wave 0 &&
	syncd_usage "want a wave from 1 to 999" -c "$T/syncd.conf" --once --wave abc &&
	syncd_usage "want a wave from 1 to 999" -c "$T/syncd.conf" --once --wave 1000'

check "SIGTERM: a clean stop" exits_cleanly "$RELAY_PID"
done_testing
