#!/bin/bash
# test_relay_crash.sh - exactly once across a relay crash (inflight.h):
#
#   client -> ferry-relay -> upstream: Postfix "B" (the new provider's MX)
#                               -> LMTP -> Dovecot B (the new host)
#   [syncd] destination = Dovecot B, accounts = alice only (bob is a
#   mailbox at B, but not an account the relay can log in to).
#
# MAILFERRY_TEST_CRASH_AFTER_DATA=1 makes the relay _exit(137) right
# after the upstream's 250 to the final dot, before it commits that
# answer: the upstream has the message, the relay's record says pending.
# After the restart the relay must look in B:
#   1. alice's copy expunged before the restart: not there, sent again,
#      once, and not counted as a possible duplicate;
#   2. alice + bob in one transaction: alice's copy is found (not sent
#      again), bob's cannot be looked for: sent again (two copies) and
#      counted, in the log, ferryctl stats and /metrics;
#   3. kill -9 under 50 smtp-source sessions, restart: every accepted
#      message is in alice's INBOX exactly once (Message-IDs counted by
#      an independent IMAP reader).
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot postfix smtp-source curl "$LIB_PYTHON"
[ "$(id -u)" -eq 0 ] || skip_all "private Postfix instances need root"
[ -x /usr/lib/dovecot/lmtp ] ||
	skip_all "Dovecot's lmtp is not installed (dovecot-lmtpd)"

plan 28

STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
M=$T/msgs
ALICE=alice@example.test
BOB=bob@example.test
mkdir -p "$STATE" "$M"

DOVECOT_NAME=B check "Dovecot B (the new host) starts" \
	start_dovecot "$ALICE:pass" "$BOB:pass"
check "Postfix B (the new MX, LMTP into Dovecot B) starts" \
	start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B"

cat >"$T/mailferry.conf" <<EOF
[global]
state_dir = $STATE
log = stderr
[relay]
listen = 127.0.0.1:$PORT
hostname = relay.test
domains = example.test
[forward]
upstream = 127.0.0.1:$POSTFIX_PORT_B
tls = none
connect_timeout = 2s
retry_initial = 1s
retry_max = 2s
crash_check_timeout = 20s
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[control]
socket = $T/control.sock
http = 127.0.0.1:$HTTP_PORT
[syncd]
source = imap://127.0.0.1:$IMAP_PORT_B?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_B?tls=none
accounts = $T/accounts
EOF
printf '%s pass %s pass\n' "$ALICE" "$ALICE" >"$T/accounts"
chmod 600 "$T/accounts"

# --- helpers -------------------------------------------------------------------

start_relay() {
	spawn relay "$FERRY_RELAY" -d -c "$T/mailferry.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 30
}

crash_relay() {
	spawn relay-crash env MAILFERRY_TEST_CRASH_AFTER_DATA=1 \
		"$FERRY_RELAY" -d -c "$T/mailferry.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 30
}

# crashed - the relay with the hook ended itself after the upstream's 250
crashed() {
	local i
	for ((i = 0; i < 300; i++)); do
		_lib_alive "$RELAY_PID" || break
		sleep 0.1
	done
	! _lib_alive "$RELAY_PID" &&
		grep -q "MAILFERRY_TEST_CRASH_AFTER_DATA: ending the process" \
			"$T/log/relay-crash.log"
}

# mkmsg NAME RCPT... - a message with its own Message-ID and body
mkmsg() {
	"$LIB_PYTHON" - "$M/$1.eml" "$1" <<'EOF'
import sys
path, name = sys.argv[1:3]
lines = ["From: <sender@a.test>", "To: <alice@example.test>",
         "Subject: crash case %s" % name,
         "Date: Mon, 23 Nov 2026 10:00:00 +0000",
         "Message-ID: <%s@crash.test>" % name, ""] + \
        ["%s line %02d: the quick brown fox jumps over the lazy dog" % (name, i)
         for i in range(20)]
open(path, "w").write("\n".join(lines) + "\n")
EOF
}

# send NAME RCPT[,RCPT] - the outcome line of one SMTP session
send() {
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$PORT" sender@a.test "$2" \
		"$M/$1.eml" | tail -n 1
}

# msgids USER - every Message-ID in USER's INBOX at B, one a line
msgids() {
	imap_cmd "$IMAP_PORT_B" "$1" pass "SELECT INBOX" \
		"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" |
		tr -d '\r' | sed -n 's/^[Mm]essage-[Ii][Dd]: *\(.*\)/\1/p'
}

# copies USER ID - how many copies of Message-ID ID USER's INBOX holds
copies() {
	msgids "$1" | grep -cxF "$2"
}

# wait_copies USER ID N SECS - until USER has N copies of ID
wait_copies() {
	local i n
	for ((i = 0; i < $4 * 4; i++)); do
		n=$(copies "$1" "$2")
		[ "$n" = "$3" ] && return 0
		sleep 0.25
	done
	echo "$1: $n copies of $2 after $4 s, wanted $3" >&2
	return 1
}

# stays USER ID N SECS - USER keeps exactly N copies of ID for SECS
stays() {
	local i n
	for ((i = 0; i < $4 * 2; i++)); do
		n=$(copies "$1" "$2")
		[ "$n" = "$3" ] || {
			echo "$1: $n copies of $2, wanted $3" >&2
			return 1
		}
		sleep 0.5
	done
}

# drained SECS - the relay's queue and Postfix B's queue are empty
drained() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		if [ -z "$(ls "$STATE/spool/queue" 2>/dev/null)" ] &&
			[ "$(postfix_queue_count B)" = 0 ]; then
			return 0
		fi
		sleep 0.25
	done
	echo "relay spool: $(ls "$STATE/spool/queue" | wc -l)," \
		"Postfix B queue: $(postfix_queue_count B)" >&2
	return 1
}

metric() {
	curl -s "http://127.0.0.1:$HTTP_PORT/metrics" |
		sed -n "s/^mailferry_relay_$1 //p"
}

# --- 1. in flight, not in the mailbox: sent again, not counted --------------------

check "ferry-relay with the crash hook starts" crash_relay
mkmsg absent
RC=$(send absent "$ALICE")
diag "reply: $RC"
check "the upstream accepts it and the relay ends before its commit" crashed
check "B has alice's copy" wait_copies "$ALICE" "<absent@crash.test>" 1 30
check "alice's copy is expunged (as if never delivered)" \
	imap_cmd "$IMAP_PORT_B" "$ALICE" pass "SELECT INBOX" \
	"STORE 1:* +FLAGS.SILENT (\\Deleted)" "EXPUNGE"
stop_pid "$RELAY_PID"
check "ferry-relay restarts" start_relay
check "the restart looks and does not find it" \
	grep -q "to=<$ALICE>: in flight at an unclean stop and not in $ALICE's INBOX: sending it again" \
	"$T/log/relay.log"
check "it is sent again: alice has it once" \
	wait_copies "$ALICE" "<absent@crash.test>" 1 30
check "the queue drains" drained 30
check_output "not counted as a possible duplicate (/metrics)" 0 \
	metric crash_duplicates_total

# --- 2. found for alice, unknown for bob -----------------------------------------

stop_pid "$RELAY_PID"
check "ferry-relay with the crash hook starts again" crash_relay
mkmsg both
RC=$(send both "$ALICE,$BOB")
diag "reply: $RC"
check "one transaction for alice and bob, accepted, then the crash" crashed
check "B delivers alice's copy" wait_copies "$ALICE" "<both@crash.test>" 1 30
check "B delivers bob's copy" wait_copies "$BOB" "<both@crash.test>" 1 30
stop_pid "$RELAY_PID"
check "ferry-relay restarts" start_relay
check "alice's copy is found by Message-ID and ledger key, not sent again" \
	grep -q "to=<$ALICE> status=sent (found in the destination mailbox after an unclean stop: INBOX uid" \
	"$T/log/relay.log"
check "bob is no account: logged as a possible duplicate, sent again" \
	grep -q "to=<$BOB>: possible duplicate after crash: .*the recipient is not a \[syncd\] account" \
	"$T/log/relay.log"
check "the queue drains" drained 30
check "alice holds it exactly once" stays "$ALICE" "<both@crash.test>" 1 3
check "bob holds it twice (sent again without a look)" \
	wait_copies "$BOB" "<both@crash.test>" 2 10
check_output "/metrics: crash_duplicates_total 1" 1 \
	metric crash_duplicates_total
check "ferryctl stats: possible duplicates after crash: 1" \
	grep -q "possible duplicates after crash: 1$" \
	<("$FERRYCTL" -c "$T/mailferry.conf" stats)

# --- 3. kill -9 under 50 sessions ------------------------------------------------

before=$(grep -c ": from=<" "$T/log/relay.log")
spawn load smtp-source -s 50 -m 2000 -l 2048 -f sender@a.test -t "$ALICE" \
	"127.0.0.1:$PORT"
LOAD_PID=$SPAWN_PID
for ((i = 0; i < 600; i++)); do
	[ "$(grep -c "to=<$ALICE> relay=" "$T/log/relay.log")" -ge 300 ] && break
	sleep 0.05
done
load_alive=no
_lib_alive "$LOAD_PID" && load_alive=yes
kill -KILL -- "-$RELAY_PID"
for ((i = 0; i < 100; i++)); do _lib_alive "$RELAY_PID" || break; sleep 0.1; done
accepted=$(($(grep -c ": from=<" "$T/log/relay.log") - before))
if [ "$load_alive" = yes ] && [ "$accepted" -ge 300 ]; then
	ok "kill -9 under 50 sessions ($accepted messages accepted)"
else
	not_ok "kill -9 under 50 sessions" "load alive: $load_alive, accepted $accepted"
fi
stop_pid "$LOAD_PID"
mv "$T/log/relay.log" "$T/log/relay-killed.log"
check "ferry-relay restarts after kill -9" start_relay
diag "$(grep -E "unclean stop: [0-9]+ message" "$T/log/relay.log")"
check "everything accepted is delivered: both queues drain" drained 60
sleep 2
msgids "$ALICE" | grep -v "@crash.test>" | sort >"$T/load-ids"
total=$(wc -l <"$T/load-ids")
unique=$(sort -u "$T/load-ids" | wc -l)
diag "alice's INBOX: $total copies of $unique load messages, $accepted accepted"
if [ "$unique" -ge "$accepted" ]; then
	ok "0 lost: every accepted message is in alice's INBOX"
else
	not_ok "0 lost" "$unique distinct Message-IDs, $accepted accepted"
fi
if [ "$total" = "$unique" ]; then
	ok "0 duplicates: each Message-ID exactly once"
else
	not_ok "0 duplicates" "$((total - unique)) extra copies" \
		"$(sort "$T/load-ids" | uniq -d | head -5)"
fi

done_testing
