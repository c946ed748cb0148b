#!/bin/bash
# test_syncd_rollback.sh - switching back loses nothing: ferry-syncd
# --reverse and the [cutover] rollback phase against two real Dovecots
# (the old host "src", the new host "dst") and a dnsmasq as the MX
# watcher's only resolver.
#
#   1. A forward copy (--once) of alice's INBOX and Work to bob.
#   2. Mail at the new host after the switch: two messages in INBOX, one
#      in Work, one in a folder made there (Projects), one the relay
#      forwarded (a ledger mark, written as the relay writes it), one
#      APPENDed on both hosts, one with an INTERNALDATE of 2019.
#   3. --reverse --since 2020-01-01: the four new messages reach the old
#      host's matching folders (Projects created there); nothing that
#      came from the old host, the relay's message, the one on both sides
#      or the 2019 one is copied; every Message-ID is in the old mailbox
#      exactly once (counted by an independent reader); nothing on the
#      new host changed (flags, counts).
#   4. A rerun copies nothing and changes no flag on the old host (flags
#      set on the new host meanwhile); without --since the 2019 message
#      comes too, once.
#   5. Bad input: --since garbage (exit 2), an unreachable new host (exit
#      1, a clear error) - nothing written to the old host.
#   6. The daemon with [cutover] rollback = yes: MX old -> new (switch) ->
#      mail delivered at the new host -> MX old again: the domain enters
#      the rollback phase (logged, ferryctl status says "rollback"), the
#      daemon runs a reverse pass and the message is in the old mailbox
#      once; MX new again leaves the rollback phase.
#   7. Without --since, the reverse pass starts at the switch the watcher
#      saw (less a check_interval and a margin): a message dated 2021 on
#      the new host is listed as older than that and not copied.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm dnsmasq dig "$LIB_PYTHON" "$FERRY_SYNCD" "$FERRYCTL"
export LC_ALL=C

LEDGER_PUT=$top_builddir/tests/integration/ledger_put
[ -x "$LEDGER_PUT" ] || {
	echo "Bail out! $LEDGER_PUT not built"
	exit 1
}

DOVECOT_NAME=src check "old host's Dovecot starts" start_dovecot alice:pass carol:pass ||
	done_testing
DOVECOT_NAME=dst check "new host's Dovecot starts" start_dovecot bob:pass dave:pass ||
	done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
mkdir -p "$T/log"

# msg NAME - a message file $T/NAME.eml with Message-ID <NAME@rollback.test>
msg() {
	printf 'From: s@example.org\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <%s@rollback.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\nbody of %s\r\n' \
		"$1" "$1" "$1" >"$T/$1.eml"
}

# The independent reader: Python's imaplib, not mailferry's client.
cat >"$T/reader.py" <<'EOF'
import imaplib, re, sys
port, user, op = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = imaplib.IMAP4("127.0.0.1", port)
c.login(user, "pass")
if op == "ids":           # ids FOLDER: one Message-ID a line, sorted
    c.select('"%s"' % sys.argv[4], readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = []
    for d in data:
        if isinstance(d, tuple):
            m = re.search(rb"<([^>]*)>", d[1])
            out.append(m.group(1).decode() if m else "-")
    print("\n".join(sorted(out)))
elif op == "append":      # append FOLDER FILE INTERNALDATE
    data = open(sys.argv[5], "rb").read()
    c.append('"%s"' % sys.argv[4], None, '"%s"' % sys.argv[6], data)
elif op == "state":       # state FOLDER: uid, flags of every message
    c.select('"%s"' % sys.argv[4], readonly=True)
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    print("\n".join(sorted(d.decode() for d in data if d)))
c.logout()
EOF
ids() { "$LIB_PYTHON" "$T/reader.py" "$1" "$2" ids "$3"; }
# dups PORT USER FOLDER - Message-IDs found more than once (empty: none)
dups() { ids "$@" | uniq -d; }
has_once() { # has_once PORT USER FOLDER NAME
	[ "$(ids "$1" "$2" "$3" | grep -cx "$4@rollback.test")" = 1 ]
}
has_none() { # has_none PORT USER FOLDER NAME
	[ "$(ids "$1" "$2" "$3" | grep -cx "$4@rollback.test")" = 0 ]
}

# --- 1. the forward copy ----------------------------------------------------------
for m in a1 a2 a3 w0; do msg "$m"; done
check "old host: three messages in INBOX, one in Work" eval \
	'imap_append $SRC alice pass INBOX $T/a1.eml && imap_append $SRC alice pass INBOX $T/a2.eml &&
	 imap_append $SRC alice pass INBOX $T/a3.eml "\\Seen" && imap_create $SRC alice pass Work &&
	 imap_append $SRC alice pass Work $T/w0.eml'

printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/state
log = stderr
log_level = info
[syncd]
http =
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
EOF
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/once.out" \
	2>"$T/log/once.log"
check_output "forward copy: the new host holds the four messages" "3 1" \
	eval 'echo $(imap_count $DST bob pass INBOX) $(imap_count $DST bob pass Work)'

# --- 2. mail at the new host -------------------------------------------------------
for m in n1 n2 nw relay both old2019 p1; do msg "$m"; done
# the copy on each host with the same INTERNALDATE: the content key has
# it to the second, and two APPENDs a moment apart may straddle one
both_date=$(LC_ALL=C date -u '+%d-%b-%Y %H:%M:%S +0000')
setup_new() {
	imap_append "$DST" bob pass INBOX "$T/n1.eml" &&
		imap_append "$DST" bob pass INBOX "$T/n2.eml" '\Flagged' &&
		imap_append "$DST" bob pass Work "$T/nw.eml" &&
		imap_create "$DST" bob pass Projects &&
		imap_append "$DST" bob pass Projects "$T/p1.eml" &&
		imap_append "$DST" bob pass INBOX "$T/relay.eml" &&
		"$LEDGER_PUT" "$T/state" bob "$T/relay.eml" >/dev/null &&
		"$LIB_PYTHON" "$T/reader.py" "$DST" bob append INBOX "$T/both.eml" \
			"$both_date" &&
		"$LIB_PYTHON" "$T/reader.py" "$SRC" alice append INBOX "$T/both.eml" \
			"$both_date" &&
		"$LIB_PYTHON" "$T/reader.py" "$DST" bob append INBOX "$T/old2019.eml" \
			"01-Mar-2019 10:00:00 +0000"
}
check "new host: mail after the switch (new, forwarded by the relay, on both, from 2019)" setup_new

snap() {
	echo "INBOX"
	"$LIB_PYTHON" "$T/reader.py" "$DST" bob state INBOX
	echo "Work"
	"$LIB_PYTHON" "$T/reader.py" "$DST" bob state Work
	echo "Projects"
	"$LIB_PYTHON" "$T/reader.py" "$DST" bob state Projects
}
snap >"$T/dst.before"

# reverse NAME [ARGS...] - a reverse pass; stdout $T/NAME.out, RRC
reverse() {
	local name=$1
	shift
	timeout -s KILL 120 "$FERRY_SYNCD" -c "${RCONF:-$T/syncd.conf}" --reverse \
		"$@" >"$T/$name.out" 2>"$T/log/reverse-$name.log"
	RRC=$?
}

# --- 3. --reverse --since ----------------------------------------------------------
reverse r1 --since 2020-01-01 --once
if [ "$RRC" -le 1 ] && grep -q '^ferry-syncd reverse pass: 1 account, 3 folders, .* 4 copied' "$T/r1.out" &&
	grep -q '^reverse account bob -> alice' "$T/r1.out"; then
	ok "--reverse --since: 4 messages copied back, the report says reverse"
else
	not_ok "--reverse --since: 4 messages copied back, the report says reverse" "exit $RRC" \
		"$(cat "$T/r1.out")" "$(tail -n 20 "$T/log/reverse-r1.log")"
fi
check "the new messages are in the old INBOX once each" eval \
	'has_once $SRC alice INBOX n1 && has_once $SRC alice INBOX n2'
check "the new Work message is in the old Work folder once" has_once "$SRC" alice Work nw
check "a folder made on the new host is created on the old host with its message" \
	has_once "$SRC" alice Projects p1
check "the relay's message (ledger) is not copied back" has_none "$SRC" alice INBOX relay
check "the message on both hosts is not copied again" has_once "$SRC" alice INBOX both
check "the 2019 message is passed over by --since" has_none "$SRC" alice INBOX old2019
check "the report lists it as not copied by this pass (older than --since), not as there: exit 1" eval \
	"[ $RRC -eq 1 ] && grep -q 'older than --since: not copied by this pass' '$T/r1.out' && grep -q '1 skipped by policy' '$T/r1.out'"
check_output "no Message-ID twice in the old INBOX or Work" "" \
	eval 'dups $SRC alice INBOX; dups $SRC alice Work'
check_output "the old INBOX holds exactly a1 a2 a3 both n1 n2" \
	"a1 a2 a3 both n1 n2" eval 'echo $(ids $SRC alice INBOX | sed "s/@rollback.test//")'
check "the copy of a flagged message is flagged on the old host" eval \
	'imap_flags $SRC alice pass INBOX | tail -n 2 | grep -q Flagged'
snap >"$T/dst.after"
check "the new host is unchanged (read-only: flags and UIDs as before)" \
	cmp -s "$T/dst.before" "$T/dst.after"
check "the relay's message is skipped as the ledger says (logged)" \
	grep -q 'skipped: the relay already delivered it (ledger)' "$T/log/reverse-r1.log"

# --- 4. reruns -----------------------------------------------------------------------
# flags changed on the new host meanwhile are not pushed to the old host
imap_cmd "$DST" bob pass 'SELECT INBOX' 'UID STORE 1:* +FLAGS (\Answered)' >/dev/null
old_flags() {
	"$LIB_PYTHON" "$T/reader.py" "$SRC" alice state INBOX
	"$LIB_PYTHON" "$T/reader.py" "$SRC" alice state Work
}
old_flags >"$T/src.before"
reverse r2 --since 2020-01-01
check "a rerun copies nothing" grep -q '^ferry-syncd reverse pass: .* 0 copied' "$T/r2.out"
old_flags >"$T/src.after"
check "flags set on the new host are not pushed to the old host's messages" \
	cmp -s "$T/src.before" "$T/src.after"
reverse r3
check "without --since (no switch known) the 2019 message comes back too" \
	grep -q '^ferry-syncd reverse pass: .* 1 copied' "$T/r3.out"
check "... once" has_once "$SRC" alice INBOX old2019
reverse r4
check "and a rerun copies nothing" grep -q '^ferry-syncd reverse pass: .* 0 copied' "$T/r4.out"
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/once2.out" \
	2>"$T/log/once2.log"
check "the forward pass does not copy the reverse copies forward again" \
	grep -q '^ferry-syncd pass: .* 0 copied' "$T/once2.out"
check_output "no Message-ID twice on the new host" "" \
	eval 'dups $DST bob INBOX; dups $DST bob Work'

# --- 5. bad input --------------------------------------------------------------------
src_before=$(ids "$SRC" alice INBOX | wc -l)
reverse bad --since garbage
if [ "$RRC" -eq 2 ] && grep -q 'not a date' "$T/log/reverse-bad.log"; then
	ok "--since garbage: exit 2, a clear error"
else
	not_ok "--since garbage: exit 2, a clear error" "exit $RRC" "$(cat "$T/log/reverse-bad.log")"
fi
timeout -s KILL 60 "$FERRY_SYNCD" -c "$T/syncd.conf" --since 2020-01-01 --once \
	>/dev/null 2>"$T/log/since-alone.log"
check_output "--since without --reverse: exit 2" 2 echo $?
DEAD=$(free_port)
sed "s|^destination = .*|destination = imap://127.0.0.1:$DEAD?tls=none|" \
	"$T/syncd.conf" >"$T/dead.conf"
RCONF=$T/dead.conf reverse dead
if [ "$RRC" -eq 1 ] && grep -qi "127.0.0.1:$DEAD\|connect" "$T/dead.out" "$T/log/reverse-dead.log"; then
	ok "unreachable new host: exit 1, the error names it"
else
	not_ok "unreachable new host: exit 1, the error names it" "exit $RRC" \
		"$(cat "$T/dead.out" "$T/log/reverse-dead.log")"
fi
check_output "nothing written to the old host by the failed runs" "$src_before" \
	eval 'ids $SRC alice INBOX | wc -l'

# --- 6. the daemon: switch, mail at the new host, switch back -------------------------
for m in c1 c2 d1 d2; do msg "$m"; done
check "carol: two messages on the old host" eval \
	'imap_append $SRC carol pass INBOX $T/c1.eml && imap_append $SRC carol pass INBOX $T/c2.eml'
printf 'carol pass dave pass\n' >"$T/accounts2"
chmod 600 "$T/accounts2"
start_dns <<EOF
MX example.test 10 mx.old.test
EOF
cat >"$T/daemon.conf" <<EOF
[global]
state_dir = $T/state2
log = stderr
log_level = info
[syncd]
http =
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts2
interval = 1h
[cutover]
domains = example.test
resolvers = 127.0.0.1:$DNS_PORT
new_mx = mx.new.test
old_mx = mx.old.test
check_interval = 1s
catchup_interval = 1s
quiet_period = 1h
rollback = yes
EOF
wait_for() { # wait_for COUNT PATTERN FILE
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(grep -c -- "$2" "$3" 2>/dev/null)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
spawn syncd "$FERRY_SYNCD" -d -c "$T/daemon.conf"
p=$SPAWN_PID
LOG=$T/log/syncd.log
check "daemon: the first pass copies carol's mail (MX old)" wait_for 1 "pass 1: done" "$LOG"
update_dns <<EOF
MX example.test 10 mx.new.test
EOF
check "MX new: the domain switches" wait_for 1 "phase synced -> switching" "$LOG"
check "new host: mail delivered for dave after the switch" eval \
	'imap_append $DST dave pass INBOX $T/d1.eml && imap_append $DST dave pass INBOX $T/d2.eml'
if grep -q "reverse pass" "$LOG"; then
	not_ok "no reverse pass before the MX goes back" "$(grep "reverse pass" "$LOG")"
else
	ok "no reverse pass before the MX goes back"
fi
update_dns <<EOF
MX example.test 10 mx.old.test
EOF
check "MX old again: the domain enters rollback (logged)" \
	wait_for 1 "phase dual-reception -> rollback (BACK): every resolver answers old again" "$LOG"
check "the daemon runs a reverse pass for the domain" \
	wait_for 1 "reverse pass [0-9]*: done" "$LOG"
check "the new host's mail is in carol's old INBOX once each" eval \
	'has_once $SRC carol INBOX d1 && has_once $SRC carol INBOX d2'
check_output "carol's old INBOX: c1 c2 d1 d2, nothing twice" "c1 c2 d1 d2" \
	eval 'echo $(ids $SRC carol INBOX | sed "s/@rollback.test//")'
"$FERRYCTL" -c "$T/daemon.conf" status >"$T/status.txt" 2>&1
check "ferryctl status shows the phase rollback" grep -qi "rollback" "$T/status.txt"
"$FERRYCTL" -c "$T/daemon.conf" --json status >"$T/status.json" 2>&1
check_output "ferryctl status --json: phase rollback, not safe to retire" "rollback not-yet" \
	"$LIB_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
print(d["phase"], d["verdict"]["state"] if isinstance(d.get("verdict"), dict) else d.get("verdict"))
' "$T/status.json"
n=$(grep -c "reverse pass [0-9]*: done" "$LOG")
check "another reverse pass while in rollback" wait_for $((n + 1)) "reverse pass [0-9]*: done" "$LOG"
check_output "... copies nothing again: still c1 c2 d1 d2" "c1 c2 d1 d2" \
	eval 'echo $(ids $SRC carol INBOX | sed "s/@rollback.test//")'
update_dns <<EOF
MX example.test 10 mx.new.test
EOF
check "MX new again: the domain leaves rollback" \
	wait_for 1 "phase rollback -> \(switching\|dual-reception\)" "$LOG"
stop_pid "$p"
check_output "no Message-ID twice on the new host for dave" "" dups "$DST" dave INBOX

# --- 7. the default --since is the switch the watcher saw ---------------------------
msg d2021
check "new host: a message for dave dated 2021 (long before the switch)" \
	"$LIB_PYTHON" "$T/reader.py" "$DST" dave append INBOX "$T/d2021.eml" \
		"01-Mar-2021 10:00:00 +0000"
RCONF=$T/daemon.conf reverse r5 --once
if [ "$RRC" -eq 1 ] && grep -q 'older than --since: not copied by this pass' "$T/r5.out"; then
	ok "--reverse without --since, a switch known: the 2021 message is older than the switch, listed, exit 1"
else
	not_ok "--reverse without --since, a switch known: the 2021 message is older than the switch, listed, exit 1" \
		"exit $RRC" "$(cat "$T/r5.out")" "$(tail -n 5 "$T/log/reverse-r5.log")"
fi
check "... and not copied to the old host" has_none "$SRC" carol INBOX d2021

done_testing
