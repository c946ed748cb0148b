#!/bin/bash
# test_relay_dedupe.sh - ferry-relay forwards each message once, and
# writes the ledger for ferry-syncd: client (python smtplib) ->
# ferry-relay -> smtp-sink, checks against a local dnsmasq.
#   the same message (envelope and content) sent 3 times, each in its own
#       session: the sink gets it once, the 2nd and 3rd get "250 2.0.0"
#       naming the first copy ("duplicate"), the log has
#       "ID: duplicate of FIRST", /metrics counts 2;
#   the same recipients in another order: still a duplicate (the key
#       uses the sorted RCPT set); after a restart: still a duplicate;
#   the same Message-ID with another recipient set, another sender or
#       another body: all forwarded;
#   a copy sent again while the first is still queued (upstream down):
#       a duplicate too;
#   the ledger: one STORE_DB_LEDGER entry per recipient (keys computed
#       independently by tests/integration/ledger_put), value = the time
#       of acceptance + the queue id, written only once the upstream
#       accepted the message.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink dnsmasq curl mdb_dump mdb_stat "$LIB_PYTHON"
LEDGER_PUT=$top_builddir/tests/integration/ledger_put

plan 26

M=$T/msg
STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$M" "$STATE"
RELAY_LOG=$T/log/relay.log


# mkmsg NAME CASE MSGID WORD - $M/NAME.eml: X-Case: CASE, Message-ID
# MSGID, a body made of WORD
mkmsg() {
	"$LIB_PYTHON" - "$M/$1.eml" "$2" "$3" "$4" <<'EOF'
import sys
path, case, mid, word = sys.argv[1:5]
lines = ["From: <sender@a.test>", "To: <r1@example.net>",
         "Subject: dedupe case %s" % case,
         "Date: Mon, 23 Nov 2026 10:00:00 +0000",
         "Message-ID: %s" % mid, "X-Case: %s" % case, ""] + \
        ["%s line %02d: the quick brown fox jumps over the lazy dog" % (word, i)
         for i in range(30)]
open(path, "w").write("\n".join(lines) + "\n")
EOF
}

# send FROM RCPTS NAME - the outcome line of one session
send() {
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$PORT" "$1" "$2" "$M/$3.eml" | tail -n 1
}

# queued_id REPLY - the queue id of "DATA 250 2.0.0 Ok: queued as ID"
queued_id() {
	sed -n 's/^DATA 250 2\.0\.0 .*queued as \([0-9a-f]\{16\}\).*/\1/p' <<<"$1"
}

# case_files CASE - the non-empty dump files of case CASE
case_files() {
	grep -l -x "X-Case: $1" "$SINK_DIR"/msg.* 2>/dev/null
}
case_count() {
	case_files "$1" | grep -c . || true
}
# wait_case CASE N [SECS] - until case CASE arrived N times
wait_case() {
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		[ "$(case_count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "case $1: $(case_count "$1") arrivals, wanted $2" >&2
	return 1
}

metric() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
		awk -v n="$1" '$1 == n { print $2; found = 1 } END { exit !found }'
}

queue_count() {
	mdb_stat -s queue "$STATE/db" | awk '/Entries:/ { print $2 }'
}
wait_queue() {
	local i n
	for ((i = 0; i < $2 * 10; i++)); do
		n=$(queue_count 2>/dev/null) && [ "$n" = "$1" ] && return 0
		sleep 0.1
	done
	echo "queue: ${n:-?} messages after $2 s, wanted $1" >&2
	return 1
}

# ledger - "KEYHEX VALUEHEX" per entry of the relay's ledger, sorted
ledger() {
	mdb_dump -s ledger "${1:-$STATE/db}" | awk '
		/^HEADER=END/ { data = 1; next }
		/^DATA=END/ { data = 0 }
		data { sub(/^ /, ""); if (k == "") k = $0; else { print k, $0; k = "" } }' |
		sort
}
ledger_keys() {
	ledger "${1:-$STATE/db}" | cut -d' ' -f1
}
# ledger_status KEYHEX - the entry's status byte (common/ledger.h: 01
# delivered, 02 pending; after the store's 8-byte expiry header, the
# 8-byte time and the 16-byte queue id)
ledger_status() {
	ledger | awk -v k="$1" 'tolower($1) == tolower(k) { print substr($2, 65, 2) }'
}

# --- servers -----------------------------------------------------------------

check "dnsmasq starts" start_dns <<'EOF'
TXT a.test "v=spf1 ip4:127.0.0.1 -all"
TXT b.test "v=spf1 ip4:127.0.0.1 -all"
EOF
start_smtp_sink || exit 1
cat >"$T/relay.conf" <<EOF
[global]
state_dir = $STATE
[relay]
listen = 127.0.0.1:$PORT
hostname = relay.test
domains = example.net
[forward]
upstream = 127.0.0.1:$SINK_PORT
tls = none
connect_timeout = 2s
retry_initial = 1s
retry_max = 1s
[checks]
dns = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
[dedupe]
ttl = 1d
[control]
socket = $STATE/control.sock
http = 127.0.0.1:$HTTP_PORT
EOF
start_relay() {
	spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10
}
check "ferry-relay starts" start_relay

# --- the same message three times --------------------------------------------

mkmsg A A '<dup1@dedupe.test>' alpha
R1=$(send sender@a.test r1@example.net A)
R2=$(send sender@a.test r1@example.net A)
R3=$(send sender@a.test r1@example.net A)
ID1=$(queued_id "$R1")
diag "replies: $R1" "         $R2" "         $R3"
check "1st copy: 250 queued as ID" test -n "$ID1"
# dup_reply REPLY FIRST - a 250 2.0.0 naming FIRST as the first copy
dup_reply() {
	echo "$1"
	[ -n "$2" ] || return 1
	case $1 in "DATA 250 2.0.0 "*duplicate*"$2"*) return 0 ;; esac
	return 1
}
check "2nd copy: 250 2.0.0, a duplicate of the first" dup_reply "$R2" "$ID1"
check "3rd copy: 250 2.0.0, a duplicate of the first" dup_reply "$R3" "$ID1"
once() {
	wait_case A 1 && wait_queue 0 10 && sleep 1 &&
		[ "$(case_count A)" -eq 1 ]
}
check "the sink got it once" once
check_output "/metrics: mailferry_relay_duplicates_total 2" 2 \
	metric mailferry_relay_duplicates_total
dup_logged() {
	grep -E ": [0-9a-f]{16}: duplicate of $ID1\b" "$RELAY_LOG" |
		grep -v ": $ID1: " | wc -l
}
check_output "two log lines 'ID: duplicate of $ID1'" 2 dup_logged

# --- what is and is not a duplicate -------------------------------------------

mkmsg A2 A2 '<dup1@dedupe.test>' beta	# same Message-ID, another body
RA=$(send sender@a.test r1@example.net,r2@example.net A)
RB=$(send sender@a.test r2@example.net,r1@example.net A)
RC=$(send other@b.test r1@example.net A)
RD=$(send sender@a.test r1@example.net A2)
diag "replies: $RA" "         $RB" "         $RC" "         $RD"
queued() {
	echo "$1"
	[ -n "$(queued_id "$1")" ]
}
check "same Message-ID, another recipient set: queued" queued "$RA"
check "the same recipients in another order: a duplicate" dup_reply "$RB" "$(queued_id "$RA")"
check "same Message-ID, another sender: queued" queued "$RC"
check "same Message-ID, another body: queued" queued "$RD"
arrivals() {
	wait_case A 3 && wait_case A2 1 && wait_queue 0 10 && sleep 1 &&
		echo "A $(case_count A) A2 $(case_count A2)" &&
		[ "$(case_count A)" -eq 3 ] && [ "$(case_count A2)" -eq 1 ]
}
check "all three arrived, each once (A x3 envelopes, A2 x1)" arrivals
two_rcpts() {
	local f
	for f in $(case_files A); do
		sink_envelope "$f" | grep -c '^X-Rcpt-Args:'
	done | sort | tr '\n' ' '
}
check_output "one of them for both recipients" "1 1 2 " two_rcpts
check_output "/metrics: 3 duplicates now" 3 \
	metric mailferry_relay_duplicates_total

# --- the ledger -----------------------------------------------------------------

# The ledger keys the relay must have written: (r1, A), (r2, A) and
# (r1, A2); (r1, A) was written twice (also by the other sender's copy).
want_keys() {
	local s=$T/want
	rm -rf "$s"
	mkdir -p "$s"
	"$LEDGER_PUT" "$s" r1@example.net "$M/A.eml" >/dev/null &&
		"$LEDGER_PUT" "$s" r2@example.net "$M/A.eml" >/dev/null &&
		"$LEDGER_PUT" "$s" r1@example.net "$M/A2.eml" >/dev/null &&
		ledger_keys "$s/db"
}
if [ -x "$LEDGER_PUT" ]; then
	want_keys >"$T/want.keys" 2>"$T/want.err" ||
		{ cat "$T/want.err" >&2; : >"$T/want.keys"; }
	ledger_match() {
		ledger_keys >"$T/have.keys" || return 1
		echo "have $(wc -l <"$T/have.keys"), want $(wc -l <"$T/want.keys")"
		[ -s "$T/want.keys" ] && diff "$T/want.keys" "$T/have.keys"
	}
	check "ledger: one entry per recipient, the keys of DESIGN.md §4" \
		ledger_match
else
	skip "ledger: one entry per recipient, the keys of DESIGN.md §4" \
		"ledger_put not built"
fi
ACCEPTED_IDS=$(for r in "$R1" "$RA" "$RC" "$RD"; do queued_id "$r"; done)
T0=$(date +%s)
ledger_values() {
	ledger | "$LIB_PYTHON" -c '
import sys, time
ids = set(sys.argv[1].split())
now = int(time.time())
n = 0
for line in sys.stdin:
    k, v = line.split()
    b = bytes.fromhex(v)
    # the store strips nothing for mdb_dump: 8-byte expiry header first
    exp, when, qid = int.from_bytes(b[:8], "big"), int.from_bytes(b[8:16], "big"), b[16:32].decode("ascii", "replace")
    print("key %s.. expires +%ds accepted %ds ago id %s" % (k[:8], exp - now, now - when, qid))
    # then the status: 1 delivered (common/ledger.h)
    if len(b) < 33 or b[32] != 1 or qid not in ids or not (0 <= now - when < 120) or not (86400 - 120 < exp - now <= 86400):
        print("  bad entry"); sys.exit(1)
    n += 1
sys.exit(0 if n else 1)' "$ACCEPTED_IDS"
}
check "ledger values: acceptance time, queue id, expiry after [dedupe] ttl" \
	ledger_values

# --- while the first copy is still queued -----------------------------------

ledger_keys >"$T/have.keys"
stop_smtp_sink
mkmsg C C '<dup2@dedupe.test>' gamma
RC1=$(send sender@a.test r1@example.net C)
RC2=$(send sender@a.test r1@example.net C)
diag "replies (upstream down): $RC1" "                          $RC2"
check "upstream down: the message is queued" queued "$RC1"
check "...and a copy sent meanwhile is a duplicate of it" dup_reply "$RC2" \
	"$(queued_id "$RC1")"
pending_ledger() {
	sleep 2
	ledger_keys >"$T/have2.keys"
	wc -l <"$T/have2.keys"
	[ "$(queue_count)" = 1 ] || return 1
	[ "$(wc -l <"$T/have2.keys")" -eq $(($(wc -l <"$T/have.keys") + 1)) ] ||
		return 1
	[ -x "$LEDGER_PUT" ] || return 0
	mkdir -p "$T/want2"
	k=$("$LEDGER_PUT" "$T/want2" r1@example.net "$M/C.eml") || return 1
	echo "want $k: status $(ledger_status "$k")"
	[ "$(ledger_status "$k")" = 02 ]
}
check "a pending ledger entry while the upstream has not accepted it" \
	pending_ledger
start_smtp_sink || exit 1
delivered_later() {
	wait_case C 1 30 && wait_queue 0 10 && sleep 1 &&
		[ "$(case_count C)" -eq 1 ]
}
check "the upstream is back: delivered once" delivered_later
ledger_after() {
	ledger_keys >"$T/have3.keys"
	wc -l <"$T/have3.keys"
	[ "$(wc -l <"$T/have3.keys")" -eq $(($(wc -l <"$T/have.keys") + 1)) ] ||
		return 1
	[ -x "$LEDGER_PUT" ] || return 0
	mkdir -p "$T/want3"
	k=$("$LEDGER_PUT" "$T/want3" r1@example.net "$M/C.eml") || return 1
	echo "want $k: status $(ledger_status "$k")"
	grep -qix "$k" "$T/have3.keys" && [ "$(ledger_status "$k")" = 01 ]
}
check "then its ledger entry says delivered" ledger_after

# --- a restart keeps the dedupe keys -------------------------------------------

stop_pid "$RELAY_PID"
check "ferry-relay restarts" start_relay
R4=$(send sender@a.test r1@example.net A)
diag "reply after the restart: $R4"
check "after a restart the first message is still a duplicate" dup_reply \
	"$R4" "$ID1"
not_again() {
	sleep 1
	wait_queue 0 10 && [ "$(case_count A)" -eq 3 ]
}
check "...and not forwarded again" not_again
check "the relay exits cleanly on SIGTERM" exits_cleanly "$RELAY_PID"

done_testing
