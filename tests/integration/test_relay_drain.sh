#!/bin/bash
# test_relay_drain.sh - the drain view (is the old MX still in use?):
# client (python smtplib, from 127.0.0.1 and from ::1) -> ferry-relay ->
# smtp-sink.
#   before any mail: never, nothing per hour, empty tables, queue empty;
#   3 messages from one.test over 127.0.0.1 and 2 from TWO.test over
#       ::1 (a refused one not counted): `ferryctl --json drain`, GET
#       /status ("drain") and the `ferryctl drain` table show the last
#       inbound time, 5 in the hourly counts, the top sending domains
#       (lower-cased) and client addresses with their counts;
#   the upstream down: the queue shows 1 message, "not drained yet";
#   the relay stopped: ferryctl reads the saved view ("source": "store");
#   restarted: the history, the tables and the last inbound time are
#       still there; the upstream back: queue empty again.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink dnsmasq curl "$LIB_PYTHON"
[ -x "$FERRYCTL" ] || { echo "Bail out! $FERRYCTL not built"; exit 1; }

plan 25

STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$STATE"
T0=$(date +%s)

# Can this machine use ::1?  Then the second client comes from there.
if "$LIB_PYTHON" -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
	V6=1
	LISTEN="127.0.0.1:$PORT, [::1]:$PORT"
	CLIENT2=::1
else
	V6=
	LISTEN="127.0.0.1:$PORT"
	CLIENT2=127.0.0.1
fi

# smtp.py HOST PORT FROM RCPT CASE - one message; prints the outcome line
cat >"$T/smtp.py" <<'EOF'
import smtplib, sys
host, port, sender, rcpt, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: drain %s\r\nMessage-ID: <%s@drain.test>\r\n"
       "X-Case: %s\r\n\r\nbody of %s\r\n" % (sender, rcpt, case, case, case, case)).encode()
try:
    s = smtplib.SMTP(host, port, local_hostname="client.test", timeout=30)
    s.ehlo()
    code, text = s.mail(sender)
    if code == 250:
        code, text = s.rcpt(rcpt)
        if code == 250:
            try:
                code, text = s.data(msg)
            except smtplib.SMTPDataError as e:
                code, text = e.smtp_code, e.smtp_error
    print(code, text.decode("utf-8", "replace"))
    s.quit()
except (OSError, smtplib.SMTPException) as e:
    print("session failed: %r" % (e,), file=sys.stderr)
    sys.exit(2)
EOF
# send HOST FROM RCPT CASE - exit 0 when the message was accepted
send() {
	local r
	r=$("$LIB_PYTHON" "$T/smtp.py" "$1" "$PORT" "$2" "$3" "$4") || return 1
	echo "$r"
	case $r in "250 "*) return 0 ;; esac
	return 1
}

# jget PATH... < JSON - the values at dotted paths ("null" for null)
cat >"$T/jget.py" <<'EOF'
import json, sys
doc = json.load(sys.stdin)
for p in sys.argv[1:]:
    v = doc
    for k in p.split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    print(json.dumps(v) if not isinstance(v, str) else v)
EOF
jget() {
	"$LIB_PYTHON" "$T/jget.py" "$@"
}

ctl() {
	"$FERRYCTL" -c "$T/relay.conf" "$@"
}
# drain_json - ferryctl --json drain, saved to $T/drain.json
drain_json() {
	ctl --json drain >"$T/drain.json"
}
# dj PATH... - values from ferryctl --json drain
dj() {
	drain_json && jget "$@" <"$T/drain.json"
}
# recent - arrivals in the last two hours (the test may cross an hour)
recent() {
	drain_json && "$LIB_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))["drain"]
assert d["hours"] == 72 and len(d["hourly"]) == 72, d
assert d["total"] == sum(d["hourly"]), d
print(d["hourly"][70] + d["hourly"][71], d["total"])' "$T/drain.json"
}
# tables [JSON] - "name count" of both tables, one line each, in order
tables() {
	"$LIB_PYTHON" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
d = doc.get("drain", doc)
print(" ".join("%s=%d" % (e["name"], e["count"]) for e in d["top_domains"]))
print(" ".join("%s=%d" % (e["name"], e["count"]) for e in d["top_clients"]))' "$@"
}
# last_ok - last_inbound is between T0 and now, and agrees with seconds_since_last
last_ok() {
	drain_json && "$LIB_PYTHON" -c '
import json, sys, time
doc = json.load(open(sys.argv[1]))
d, t0, now = doc["drain"], int(sys.argv[2]), int(time.time())
print("last_inbound", d["last_inbound"], "since", d["seconds_since_last"], "t0", t0)
assert t0 <= d["last_inbound"] <= now
assert abs(doc["now"] - d["last_inbound"] - d["seconds_since_last"]) <= 1' \
		"$T/drain.json" "$T0"
}

queue_total() {
	dj queue.total
}
wait_queue() {
	local i n
	for ((i = 0; i < $2 * 10; i++)); do
		n=$(queue_total 2>/dev/null) && [ "$n" = "$1" ] && return 0
		sleep 0.1
	done
	echo "queue: ${n:-?} messages after $2 s, wanted $1" >&2
	return 1
}

# --- servers -----------------------------------------------------------------

check "dnsmasq starts" start_dns <<'EOF'
TXT one.test "v=spf1 ip4:127.0.0.1 -all"
EOF
start_smtp_sink || exit 1
cat >"$T/relay.conf" <<EOF
[global]
state_dir = $STATE
[relay]
listen = $LISTEN
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
[control]
socket = $STATE/control.sock
http = 127.0.0.1:$HTTP_PORT
EOF
# start_relay - the SMTP port and the control socket (made later than the
# listeners, which are bound before privileges are dropped)
start_relay() {
	local i
	spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10 || return 1
	for ((i = 0; i < 100; i++)); do
		[ -S "$STATE/control.sock" ] && return 0
		sleep 0.1
	done
	echo "no control socket" >&2
	return 1
}
check "ferry-relay starts" start_relay

# --- nothing yet ----------------------------------------------------------------

check_output "before any mail: never, 0 per hour, no names, queue empty" \
	"null
null
0
[]
[]
0
relay" dj drain.last_inbound drain.seconds_since_last drain.total \
	drain.top_domains drain.top_clients queue.total source
never_table() {
	ctl drain >"$T/drain.txt" || return 1
	cat "$T/drain.txt"
	grep -q '^last inbound message: never' "$T/drain.txt" &&
		grep -q '^queue: empty' "$T/drain.txt"
}
check "ferryctl drain: never, queue empty" never_table

# --- five messages, two domains, two clients -------------------------------------

check "3 messages from one.test over 127.0.0.1" eval \
	'send 127.0.0.1 a@one.test r@example.net c1 &&
	send 127.0.0.1 b@One.Test r@example.net c2 &&
	send 127.0.0.1 a@one.test r@example.net c3'
check "2 messages from TWO.test over $CLIENT2" eval \
	'send "$CLIENT2" x@TWO.test r@example.net c4 &&
	send "$CLIENT2" y@two.test r@example.net c5'
check "a refused message (relay denied)" eval \
	'! send 127.0.0.1 z@three.test r@elsewhere.test c6'
check "all delivered, queue empty" eval 'sink_wait 5 && wait_queue 0 10'
check_output "hourly counts: 5 in the last hours, total 5" "5 5" recent
check "last_inbound is now-ish, seconds_since_last agrees" last_ok
if [ -n "$V6" ]; then
	WANT_CLIENTS="127.0.0.1=3 ::1=2"
else
	WANT_CLIENTS="127.0.0.1=5"
fi
check_output "top tables: domains (lower-cased) and clients with counts" \
	"one.test=3 two.test=2
$WANT_CLIENTS" tables "$T/drain.json"
status_drain() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/status" >"$T/status.json" &&
		jget drain.total <"$T/status.json" && tables "$T/status.json"
}
check_output "GET /status: the same under \"drain\"" "5
one.test=3 two.test=2
$WANT_CLIENTS" status_drain
table_5() {
	ctl drain >"$T/drain.txt" || return 1
	cat "$T/drain.txt"
	grep -q '^arrivals: 5 in the last 72 h' "$T/drain.txt" &&
		grep -Eq '^last inbound message: [0-9]+s ago' "$T/drain.txt" &&
		grep -Eq '^ +one\.test +3 ' "$T/drain.txt" &&
		grep -Eq '^ +two\.test +2 ' "$T/drain.txt" &&
		grep -Eq '^ +127\.0\.0\.1 +[35] ' "$T/drain.txt" &&
		grep -q '^queue: empty' "$T/drain.txt" &&
		! grep -q 'three\.test' "$T/drain.txt"
}
check "ferryctl drain: the table (arrivals, names, counts, queue empty)" \
	table_5

# --- the queue not empty ------------------------------------------------------------

stop_smtp_sink
check "the upstream down: one more message accepted" \
	send 127.0.0.1 a@one.test r@example.net c7
wait_queue_1() {
	wait_queue 1 10 && queue_total
}
check_output "ferryctl --json drain: queue total 1" 1 wait_queue_1
queued_table() {
	ctl drain >"$T/drain.txt" || return 1
	cat "$T/drain.txt"
	grep -q '^queue: 1 message' "$T/drain.txt" &&
		grep -q '^verdict: not drained yet' "$T/drain.txt"
}
check "ferryctl drain: queue 1 message, not drained yet" queued_table

# --- restart -----------------------------------------------------------------------

before=$(dj drain.last_inbound)
tables "$T/drain.json" >"$T/tables.before"
relay_stops() {
	local i
	kill -TERM "$RELAY_PID" || return 1
	for ((i = 0; i < 150; i++)); do
		_lib_alive "$RELAY_PID" || break
		sleep 0.1
	done
	! _lib_alive "$RELAY_PID" && wait "$RELAY_PID"
}
check "ferry-relay stops (SIGTERM)" relay_stops
check_output "relay down: ferryctl reads the saved view" "store
6
$before
1" dj source drain.total drain.last_inbound queue.total
offline_table() {
	ctl drain >"$T/drain.txt" || return 1
	cat "$T/drain.txt"
	grep -q 'not running' "$T/drain.txt" &&
		grep -q '^arrivals: 6 in the last 72 h' "$T/drain.txt"
}
check "ferryctl drain (relay down) says so and shows the history" offline_table
check "ferry-relay starts again" start_relay
check_output "after the restart: total, last inbound, live" "relay
6
$before" dj source drain.total drain.last_inbound
restart_tables() {
	drain_json && tables "$T/drain.json" >"$T/tables.after" &&
		cat "$T/tables.after" && diff "$T/tables.before" "$T/tables.after"
}
check "after the restart: the same top tables" restart_tables
check_output "after the restart: hourly counts kept" "6 6" recent

start_smtp_sink || exit 1
check "the upstream back: the queued message is delivered" \
	eval 'sink_wait 6 30 && wait_queue 0 30'
check "ferryctl drain: queue empty again" eval \
	'ctl drain >"$T/drain.txt" && cat "$T/drain.txt" && grep -q "^queue: empty" "$T/drain.txt"'

done_testing
