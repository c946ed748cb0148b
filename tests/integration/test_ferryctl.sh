#!/bin/bash
# test_ferryctl.sh - ferryctl and the relay's control interfaces against a
# real ferry-relay: the upstream is down at first (nothing listens on its
# port), so the messages swaks sends stay queued; ferryctl lists, shows,
# holds, releases and deletes them; then smtp-sink comes up and
# "retry all" delivers the rest.  /metrics and /status are read with curl;
# finally the relay is stopped and "ferryctl stats" must say so.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd swaks smtp-sink curl

RPORT=$(free_port) && HPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
# The upstream's port: smtp-sink's, with smtp-sink stopped for now (the
# harness starts it on the same port again later).
start_smtp_sink && stop_smtp_sink || {
	echo "Bail out! smtp-sink does not start"
	exit 1
}
UPORT=$SINK_PORT
STATE=$T/state
mkdir -p "$STATE"
CONF=$T/relay.conf
# retry_initial is long: "retry all" must be what delivers, not a timer.
cat >"$CONF" <<EOF
[global]
state_dir = $STATE
log = stderr
log_level = debug
[relay]
listen = 127.0.0.1:$RPORT
hostname = relay.test
domains = example.com
[forward]
upstream = 127.0.0.1:$UPORT
tls = none
connect_timeout = 5s
retry_initial = 10m
retry_max = 30m
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[cutover]
domains = example.com
new_mx = *.new.example
quiet_period = 1h
[control]
socket = $STATE/control.sock
http = 127.0.0.1:$HPORT
EOF

ctl() { "$FERRYCTL" -c "$CONF" "$@"; }

# queue_json_ids - the ids in "ferryctl --json queue", sorted, one line
queue_json_ids() {
	ctl --json queue | "$LIB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
assert d["count"] == len(d["messages"])
print(" ".join(sorted(m["id"] for m in d["messages"])))'
}

# queue_field ID FIELD - one field of one message from --json queue
queue_field() {
	ctl --json queue | "$LIB_PYTHON" -c '
import json, sys
for m in json.load(sys.stdin)["messages"]:
    if m["id"] == sys.argv[1]:
        print(m[sys.argv[2]])' "$1" "$2"
}

# all_tried N - true when the queue holds N messages, each tried at least
# once and each with a next try in the future
all_tried() {
	ctl --json queue | "$LIB_PYTHON" -c '
import json, sys, time
d = json.load(sys.stdin)
ms = d["messages"]
ok = len(ms) == int(sys.argv[1]) and all(
    m["attempts"] >= 1 and m["state"] == "deferred" and m["next_try"]
    and m["next_try"] > time.time() and m["last_reply"] for m in ms)
sys.exit(0 if ok else 1)' "$1"
}

# wait_for SECS CMD... - retry CMD every 0.2 s until it succeeds
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"$@"
}

# send N - one message through the relay; prints the queue id
send() {
	local out
	out=$(swaks --server "127.0.0.1:$RPORT" --helo client.test \
		--from alice@example.org --to "bob$1@example.com" \
		--header "Subject: ferryctl test $1" \
		--body "Body of message $1." 2>&1) || {
		printf '%s\n' "$out" >&2
		return 1
	}
	printf '%s\n' "$out" | grep -o 'queued as [0-9a-f]\{16\}' | sed 's/.* //'
}

queue_empty() {
	[ "$(queue_json_ids)" = "" ]
}

metric() {
	curl -sf "http://127.0.0.1:$HPORT/metrics" |
		awk -v m="$1" '$1 == m { print $2 }'
}

metric_ge() {
	local v
	v=$(metric "$1")
	[ -n "$v" ] && [ "$v" -ge "$2" ]
}

# --- start --------------------------------------------------------------------

spawn relay "$FERRY_RELAY" -d -c "$CONF"
RELAY_PID=$SPAWN_PID
check "ferry-relay listens" wait_port "$RPORT"
# The SMTP port is bound before the control socket is made: wait for both.
check "the control socket appears" wait_for 10 test -S "$STATE/control.sock"
check "control socket is mode 0600" \
	bash -c "[ \"\$(stat -c %a '$STATE/control.sock')\" = 600 ]"
check_output "ferryctl queue on an empty queue" "The queue is empty." ctl queue

# status_json PY - run a python check over "ferryctl status --json"
# (dom: its first domain)
status_json() {
	ctl status --json | "$LIB_PYTHON" -c "
import json, sys
d = json.load(sys.stdin)
dom = d['domains'][0]
$1"
}
check "ferryctl status before any pass: presync, no pass yet, not-yet" \
	status_json "assert dom['domain'] == 'example.com', dom
assert dom['phase'] == 'presync', dom
assert dom['verdict'] == 'not-yet', dom
assert any('no pass yet' in o for o in dom['outstanding']), dom
assert dom['relay']['running'] is True, dom
assert dom['history'] == [] and dom['resolvers'] == [], dom"
check "ferryctl status (table) names the phase and the verdict" \
	bash -c "\"\$0\" -c '$CONF' status | grep -q '^example.com: presync' &&
	\"\$0\" -c '$CONF' status | grep -q 'verdict: not-yet'" "$FERRYCTL"
check "GET /cutover serves the same document" \
	bash -c "curl -sf http://127.0.0.1:$HPORT/cutover | '$LIB_PYTHON' -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"domains\"][0][\"phase\"] == \"presync\", d
assert d[\"domains\"][0][\"verdict\"] == \"not-yet\", d'"

IDS=()
for n in 1 2 3; do
	id=$(send "$n")
	[ -n "$id" ] && IDS+=("$id")
done
if [ ${#IDS[@]} -eq 3 ]; then
	ok "3 messages accepted (${IDS[*]})"
else
	not_ok "3 messages accepted" "got ids: ${IDS[*]}"
	done_testing
fi
ID1=${IDS[0]} ID2=${IDS[1]} ID3=${IDS[2]}
SORTED=$(printf '%s\n' "${IDS[@]}" | sort | tr '\n' ' ' | sed 's/ $//')

check "each message tried once against the dead upstream (deferred)" \
	wait_for 20 all_tried 3

check "ferryctl queue lists the 3 messages" \
	bash -c "out=\$(\"\$0\" -c '$CONF' queue) || exit 1; echo \"\$out\";
	for id in $ID1 $ID2 $ID3; do
		echo \"\$out\" | grep -Eq \"^\$id +[0-9].* deferred +[1-9][0-9]* +in [0-9]\" || exit 1
	done" "$FERRYCTL"
check_output "ferryctl --json queue: valid JSON with the right ids" \
	"$SORTED" queue_json_ids
check "ferryctl --json queue passes python3 -m json.tool" \
	bash -c "\"\$0\" -c '$CONF' --json queue | '$LIB_PYTHON' -m json.tool" \
	"$FERRYCTL"

check "ferryctl show prints the envelope and the Subject" \
	bash -c "out=\$(\"\$0\" -c '$CONF' show $ID1) || exit 1; echo \"\$out\";
	echo \"\$out\" | grep -q '^id: *$ID1' &&
	echo \"\$out\" | grep -q 'from: *<alice@example.org>' &&
	echo \"\$out\" | grep -q 'to: *<bob1@example.com>' &&
	echo \"\$out\" | grep -q 'Subject: ferryctl test 1'" "$FERRYCTL"
check "ferryctl --json show is valid JSON with the headers" \
	bash -c "\"\$0\" -c '$CONF' --json show $ID1 | '$LIB_PYTHON' -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"id\"] == \"$ID1\" and d[\"sender\"] == \"alice@example.org\"
assert any(h.startswith(\"Subject: ferryctl test 1\") for h in d[\"headers\"])'" \
	"$FERRYCTL"
check_fail "ferryctl show of an unknown ID fails" ctl show 0123456789abcdef
expect_rc() {
	local want=$1 rc
	shift
	"$@"
	rc=$?
	[ $rc -eq "$want" ] || {
		echo "exit $rc, want $want"
		return 1
	}
}
check "ferryctl show with a malformed ID exits 2" expect_rc 2 ctl show ../etc
check "ferryctl hold of an unknown ID exits 1" expect_rc 1 ctl hold 0123456789abcdef
check "ferryctl with an unknown command exits 2" expect_rc 2 ctl frobnicate

check "ferryctl hold" ctl hold "$ID1"
check_output "the held message shows as held" "held" queue_field "$ID1" state
check "ferryctl --json release: ok, the command, the ID and the relay's result" eval \
	"ctl --json release '$ID1' | $LIB_PYTHON -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"ok\"] is True and d[\"command\"] == \"release\" and d[\"id\"] == sys.argv[1] and d[\"result\"], d' '$ID1'"
check "ferryctl --json hold of an unknown ID: ok false, the relay's error" eval \
	"ctl --json hold 0123456789abcdef | $LIB_PYTHON -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"ok\"] is False and d[\"command\"] == \"hold\" and d[\"error\"], d'"
ctl hold "$ID1" >/dev/null
check "ferryctl release" ctl release "$ID1"
check_output "the released message is no longer held" "False" \
	queue_field "$ID1" held

check "ferryctl delete" ctl delete "$ID2"
check "the deleted message is gone from the queue" \
	wait_for 10 bash -c "! \"\$0\" -c '$CONF' --json queue | grep -q '$ID2'" \
	"$FERRYCTL"
check "the deleted message's spool file is removed" \
	wait_for 10 test ! -e "$STATE/spool/queue/$ID2"

check "ferryctl --json stats is valid JSON with the queue" \
	bash -c "\"\$0\" -c '$CONF' --json stats | '$LIB_PYTHON' -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"queue\"][\"total\"] == 2, d
assert d[\"counters\"][\"accepted\"] == 3, d'" "$FERRYCTL"

# --- the upstream comes back -------------------------------------------------

check "smtp-sink starts on the upstream port" start_smtp_sink
check "ferryctl retry all" ctl retry all
check "both remaining messages arrive at the sink" sink_wait 2 20
check "the queue is empty afterwards" wait_for 10 queue_empty

check "/metrics: accepted_total 3" metric_ge mailferry_relay_accepted_total 3
check_output "/metrics: accepted_total is exactly 3" "3" \
	metric mailferry_relay_accepted_total
check "/metrics: deferred_total >= 1" metric_ge mailferry_relay_deferred_total 1
check "/metrics: forwarded_total >= 2" metric_ge mailferry_relay_forwarded_total 2
check "/metrics: has HELP/TYPE lines and the latency histogram" \
	bash -c "curl -sf http://127.0.0.1:$HPORT/metrics > '$T/metrics' &&
	grep -q '^# TYPE mailferry_relay_accepted_total counter' '$T/metrics' &&
	grep -q '^mailferry_relay_upstream_latency_seconds_bucket{le=\"+Inf\"} [1-9]' '$T/metrics' &&
	grep -q '^mailferry_relay_queue_messages{state=\"held\"} 0' '$T/metrics'"
check "/status is valid JSON" \
	bash -c "curl -sf http://127.0.0.1:$HPORT/status | '$LIB_PYTHON' -m json.tool"
check_output "unknown HTTP path: 404" "404" \
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HPORT/nope"
check_output "POST /metrics: 405" "405" \
	curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HPORT/metrics"

# --- the relay stops ---------------------------------------------------------

stop_pid "$RELAY_PID"
check "the control socket is removed when the relay stops" \
	test ! -e "$STATE/control.sock"
check "ferryctl stats with the relay stopped: exit 1, says it is not running" \
	bash -c "out=\$(\"\$0\" -c '$CONF' stats 2>&1); rc=\$?; echo \"\$out\";
	[ \$rc -eq 1 ] && echo \"\$out\" | grep -q 'relay is not running'" \
	"$FERRYCTL"
check "ferryctl status with both daemons stopped: exit 0, relay not running" \
	status_json "assert dom['relay']['running'] is False, dom
assert dom['phase'] == 'presync', dom"
printf '[cutover]\ndomains = example.com\n' >"$T/bad.conf"
check "ferryctl status: [cutover] domains without new_mx exits 2" \
	expect_rc 2 "$FERRYCTL" -c "$T/bad.conf" status
check "ferryctl status names the file and line of the bad key" \
	bash -c "\"\$0\" -c '$T/bad.conf' status 2>&1 | grep -q 'bad.conf:2: \\[cutover\\] domains'" \
	"$FERRYCTL"

done_testing
