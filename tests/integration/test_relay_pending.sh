#!/bin/bash
# test_relay_pending.sh - dual reception while the new MX is down must not
# put two copies in the new mailbox (DESIGN.md §1 promise 2):
#
#   client -> ferry-relay -> upstream: Postfix "B" (the new provider's MX)
#                 |             -> LMTP -> Dovecot B (the new host)
#                 +-> copy_to: Postfix "A" (the old local MTA)
#                               -> LMTP -> Dovecot A (the old host)
#   ferry-syncd copies Dovecot A -> Dovecot B, sharing the relay's LMDB.
#
# With Postfix B stopped, messages reach the old INBOX through copy_to at
# once while the relay keeps its own copy queued.  A delta pass then finds
# the old host's copy and a pending ledger entry (written with the spool
# commit): it must not copy it, and must not record it as done.  When
# Postfix B is back the relay delivers its copy: exactly one in B, and
# the next pass copies nothing.  When the relay gives up on a message
# (ferryctl delete), the pending entry goes and the next pass copies the
# old host's copy, exactly once.  And a relay killed between the spool
# fsync and the LMDB commit rebuilds the record, keys included, so the
# message still reaches B once.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot postfix "$LIB_PYTHON"
[ "$(id -u)" -eq 0 ] || skip_all "private Postfix instances need root"
[ -x /usr/lib/dovecot/lmtp ] ||
	skip_all "Dovecot's lmtp is not installed (dovecot-lmtpd)"

plan 31

STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
M=$T/msgs
USER=alice@example.test
mkdir -p "$STATE" "$M"

# --- servers -------------------------------------------------------------------

DOVECOT_NAME=A check "Dovecot A (the old host) starts" start_dovecot "$USER:pass"
DOVECOT_NAME=B check "Dovecot B (the new host) starts" start_dovecot "$USER:pass"
check "Postfix A (old local delivery, LMTP into Dovecot A) starts" \
	start_postfix A "lmtp:inet:127.0.0.1:$LMTP_PORT_A"
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
copy_to = 127.0.0.1:$POSTFIX_PORT_A
tls = none
connect_timeout = 2s
retry_initial = 1s
retry_max = 2s
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[control]
socket = $T/control.sock
http = 127.0.0.1:$HTTP_PORT
[syncd]
source = imap://127.0.0.1:$IMAP_PORT_A?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_B?tls=none
accounts = $T/accounts
EOF
printf '%s pass %s pass\n' "$USER" "$USER" >"$T/accounts"
chmod 600 "$T/accounts"

start_relay() {
	spawn relay "$FERRY_RELAY" -d -c "$T/mailferry.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10
}
check "ferry-relay starts" start_relay

# --- helpers ---------------------------------------------------------------------

# mkmsg NAME - a message with its own Message-ID and body
mkmsg() {
	"$LIB_PYTHON" - "$M/$1.eml" "$1" <<'EOF'
import sys
path, name = sys.argv[1:3]
lines = ["From: <sender@a.test>", "To: <alice@example.test>",
         "Subject: pending case %s" % name,
         "Date: Mon, 23 Nov 2026 10:00:00 +0000",
         "Message-ID: <%s@pending.test>" % name, ""] + \
        ["%s line %02d: the quick brown fox jumps over the lazy dog" % (name, i)
         for i in range(20)]
open(path, "w").write("\n".join(lines) + "\n")
EOF
}

# send NAME - the outcome line of one SMTP session to the relay
send() {
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$PORT" sender@a.test "$USER" \
		"$M/$1.eml" | tail -n 1
}

# queued_id REPLY - the queue id of "DATA 250 2.0.0 Ok: queued as ID"
queued_id() {
	sed -n 's/^DATA 250 2\.0\.0 .*queued as \([0-9a-f]\{16\}\).*/\1/p' <<<"$1"
}

count() {
	local v=IMAP_PORT_$1
	imap_count "${!v}" "$USER" pass INBOX
}

# wait_count NAME N SECS - until Dovecot NAME's INBOX holds N messages
wait_count() {
	local i n
	for ((i = 0; i < $3 * 10; i++)); do
		n=$(count "$1")
		[ "$n" = "$2" ] && return 0
		sleep 0.1
	done
	echo "Dovecot $1: $n messages after $3 s, wanted $2" >&2
	return 1
}

# same_for SECS NAME N - Dovecot NAME's INBOX holds N for SECS seconds
same_for() {
	local i n
	for ((i = 0; i < $1 * 4; i++)); do
		n=$(count "$2")
		[ "$n" = "$3" ] || {
			echo "Dovecot $2: $n messages, wanted $3" >&2
			return 1
		}
		sleep 0.25
	done
}

# subjects NAME - the subjects in Dovecot NAME's INBOX, sorted
subjects() {
	local v=IMAP_PORT_$1
	imap_cmd "${!v}" "$USER" pass "SELECT INBOX" \
		"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])" |
		sed -n 's/^Subject: \(.*\)/\1/p' | tr -d '\r' | sort
}

# pass - one ferry-syncd --once pass; prints "copied duplicates" (JSON report)
pass() {
	timeout 120 "$FERRY_SYNCD" -c "$T/mailferry.conf" --once --json \
		>"$T/pass.json" 2>>"$T/log/syncd.log" || {
		echo "ferry-syncd --once exited $?" >&2
		cat "$T/pass.json" >&2
		return 1
	}
	"$LIB_PYTHON" - "$T/pass.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = [f for a in r["accounts"] for f in a["folders"]]
print(sum(x.get("copied", 0) or 0 for x in f),
      sum(x.get("duplicates", 0) or 0 for x in f))
EOF
}

# copied - only the number a pass copied
copied() {
	local r
	r=$(pass) || return 1
	echo "${r%% *}"
}

# pending_pass - "copied skipped-as-pending" of one pass: the pending
# skips are the pass's log lines saying so
pending_pass() {
	local before after r
	before=$(grep -c "the relay still holds it" "$T/log/syncd.log")
	r=$(pass) || return 1
	after=$(grep -c "the relay still holds it" "$T/log/syncd.log")
	echo "${r%% *} $((after - before))"
}

# --- the initial copy ----------------------------------------------------------------

mkmsg old
check "an old message on the old host" \
	imap_append "$IMAP_PORT_A" "$USER" pass INBOX "$M/old.eml"
check_output "initial pass: it is copied to B" "1 0" pass

# --- the new MX is down --------------------------------------------------------------

stop_postfix B
R=
for n in m1 m2 m3; do
	mkmsg "$n"
	R="$R$(send "$n")"$'\n'
done
diag "$R"
check_output "the new MX down: three messages get 250" 3 \
	grep -c "^DATA 250 2.0.0 .*queued as" <<<"$R"
check "copy_to puts them in the old INBOX at once" wait_count A 4 30
check_output "a delta pass copies none of them: the relay still holds them" \
	"0 3" pending_pass
check_output "B holds only the old message" 1 count B
check "the pass logged why" grep -q "the relay still holds it" "$T/log/syncd.log"

# --- the new MX is back ----------------------------------------------------------------

check "Postfix B is back" start_postfix B
check "the relay delivers its three copies to B" wait_count B 4 60
check_output "another pass copies nothing" 0 copied
check "B holds each message exactly once" same_for 2 B 4
check_output "B's subjects" "pending case m1
pending case m2
pending case m3
pending case old" subjects B

# --- the relay gives up: ferryctl delete --------------------------------------------

stop_postfix B
mkmsg gone
RG=$(send gone)
IDG=$(queued_id "$RG")
diag "$RG"
check "the new MX down: one more message, in the old INBOX" wait_count A 5 30
check_output "a pass leaves it to the relay (one pending skip)" "0 1" \
	pending_pass
check "ferryctl delete removes it from the relay's queue" \
	"$FERRYCTL" -c "$T/mailferry.conf" delete "$IDG"
check_output "the next pass copies the old host's copy" 1 copied
check_output "and the pass after it copies nothing more" 0 copied
start_postfix B >/dev/null 2>&1
check "B holds it exactly once (the relay has nothing left to send)" \
	same_for 4 B 5

# --- a crash between the spool fsync and the LMDB commit -----------------------------
#
# MAILFERRY_TEST_CRASH_BEFORE_COMMIT (relay/spool.c's test hook) ends the
# relay after the spool file is durable and before its LMDB transaction:
# the client gets no 250.  The message was written in place into a pool
# file (relay/spool_pool.c) and made durable by its one fdatasync, so the
# kill comes between that fdatasync and both the 250 and the record.  The
# restart moves it to spool/queue and rebuilds the record from the file,
# with the keys computed at reception: the client's retry is a duplicate,
# the ledger knows the message, and B gets it once.

stop_pid "$RELAY_PID"
crash_relay() {
	spawn relay-crash env MAILFERRY_TEST_CRASH_BEFORE_COMMIT=1 \
		"$FERRY_RELAY" -d -c "$T/mailferry.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10
}
check "ferry-relay with the crash hook starts" crash_relay
mkmsg crash
RC=$(send crash)
diag "reply: $RC"
crashed() {
	local i
	for ((i = 0; i < 100; i++)); do
		_lib_alive "$RELAY_PID" || break
		sleep 0.1
	done
	! _lib_alive "$RELAY_PID" && ! grep -q "^DATA 250" <<<"$RC" &&
		[ -n "$(find "$STATE/spool/pool" -type f -size +0 -print)" ]
}
check "it dies with the message whole in its pool file, before the 250" crashed
stop_pid "$RELAY_PID"
rebuilt() {
	start_relay && sleep 1 &&
		grep -q "whole message moved from spool/pool to spool/queue" "$T/log/relay.log" &&
		grep "queue record rebuilt from its spool file" "$T/log/relay.log"
}
check "the restarted relay rebuilds its record from the spool file" rebuilt
RC2=$(send crash)
diag "the client's retry: $RC2"
check "the client's retry is a duplicate of the rebuilt message" \
	grep -q "^DATA 250 2.0.0 .*duplicate" <<<"$RC2"
check "B gets it" wait_count B 6 30
check "the old host gets its copy_to copy" wait_count A 6 30
check_output "a pass copies nothing: the ledger knows it" 0 copied
check "B holds it exactly once" same_for 3 B 6

done_testing
