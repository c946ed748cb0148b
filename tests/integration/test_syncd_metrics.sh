#!/bin/bash
# test_syncd_metrics.sh - ferry-syncd's GET /metrics on [syncd] http and
# its live progress line on a terminal.
#
#   - the daemon, against two Dovecots (the destination announcing
#     APPENDLIMIT) and a dnsmasq answering the old MX, serves /metrics
#     after its first pass with the numbers of that pass: messages and
#     bytes copied (the sizes of the messages), the ledger's duplicate,
#     the message skipped by policy, passes by result, the pass
#     histogram, per account end time and result (one account missing a
#     message), accounts by state, IMAP command timings per server,
#     rate-limit waits, MX answers by class, the cutover phase of each
#     domain (1 for the current one);
#   - promtool check metrics accepts the exposition (when installed);
#   - other paths are 404, other methods 405;
#   - [syncd] http empty: no listener; a port in use: the daemon refuses
#     to start and says why;
#   - --once on a pty (script -qfc): the progress line is drawn, and no
#     log line is written onto it; without a terminal no control
#     characters at all.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm dnsmasq curl "$FERRY_SYNCD" "$FERRYCTL" "$LIB_PYTHON"

LEDGER_PUT=$top_builddir/tests/integration/ledger_put
DOMAIN=example.test

OTHER=other.test
DOVECOT_NAME=src check "source Dovecot starts" start_dovecot "alice@$DOMAIN:pass" \
	"carol@$DOMAIN:pass" "dave@$OTHER:pass" || done_testing
DOVECOT_NAME=dst DOVECOT_EXTRA='imap_capability = +APPENDLIMIT=102400' \
	check "destination Dovecot starts (APPENDLIMIT)" start_dovecot "alice@$DOMAIN:pass" \
	"carol@$DOMAIN:pass" "dave@$OTHER:pass" || done_testing
check "the resolver answers the old MX" start_dns_named r1 \
	< <(printf 'MX %s 10 old-mx.%s\nMX %s 10 old-mx.%s\n' "$DOMAIN" "$DOMAIN" "$OTHER" "$DOMAIN")

# msg FILE N - a message of a size that differs per N
msg() {
	{
		printf 'From: a@example.org\r\nTo: x@%s\r\nSubject: m%s\r\n' "$DOMAIN" "$2"
		printf 'Message-ID: <metrics%s@example.org>\r\n\r\n' "$2"
		{ head -c $((100 * $2)) /dev/zero | tr '\0' 'x' | fold -w 76; echo; } |
			sed 's/$/\r/'
	} >"$1"
}
fill() {
	local i
	mkdir -p "$T/state"
	for i in 1 2 3 4; do
		msg "$T/a$i.eml" "$i"
		imap_append "$IMAP_PORT_src" "alice@$DOMAIN" pass INBOX "$T/a$i.eml" || return 1
	done
	msg "$T/c1.eml" 7
	imap_append "$IMAP_PORT_src" "carol@$DOMAIN" pass INBOX "$T/c1.eml" || return 1
	# over the destination's APPENDLIMIT: skipped by policy, missing
	msg "$T/d1.eml" 1500
	imap_append "$IMAP_PORT_src" "dave@$OTHER" pass INBOX "$T/d1.eml" || return 1
	# the relay delivered a4 to alice already: a duplicate (ledger)
	"$LEDGER_PUT" "$T/state" "alice@$DOMAIN" "$T/a4.eml" >/dev/null
}
check "six messages on the source, one in the relay's ledger, one too big" fill
# what the pass must copy: a1-a3 and c1, byte for byte
want_bytes=$(cat "$T/a1.eml" "$T/a2.eml" "$T/a3.eml" "$T/c1.eml" | wc -c)

printf 'alice@%s pass alice@%s pass\ncarol@%s pass carol@%s pass\ndave@%s pass dave@%s pass\n' \
	"$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" "$OTHER" "$OTHER" >"$T/accounts"
chmod 600 "$T/accounts"
HTTP_PORT=$(free_port)
# mkconf HTTP - the configuration with [syncd] http = HTTP
mkconf() {
	cat <<EOF
[global]
state_dir = $T/state
log = stderr
log_level = info
[relay]
hostname = old-mx.$DOMAIN
[syncd]
source = imap://127.0.0.1:$IMAP_PORT_src?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
accounts = $T/accounts
interval = 1h
max_messages_per_second = 2
http = $1
[cutover]
domains = $DOMAIN, $OTHER
resolvers = 127.0.0.1:$DNS_PORT_r1
new_mx = *.newprovider.test
check_interval = 1s
EOF
}
CONF=$T/syncd.conf
mkconf "127.0.0.1:$HTTP_PORT" >"$CONF"
spawn syncd "$FERRY_SYNCD" -d -c "$CONF"
LOG=$T/log/syncd.log
wait_log() { # wait_log PATTERN
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q -- "$1" "$LOG" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
check "the daemon listens on [syncd] http" wait_log "HTTP /metrics on 127.0.0.1:$HTTP_PORT"
check "its first pass ends" wait_log "pass 1: done"

# the cutover's phase follows the pass (synced after the full pass)
for ((i = 0; i < 100; i++)); do
	curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.txt"
	grep -q "^mailferry_syncd_cutover_phase{domain=\"$DOMAIN\",phase=\"synced\"} 1" \
		"$T/metrics.txt" && break
	sleep 0.1
done
check "GET /metrics answers" test -s "$T/metrics.txt"

# val SAMPLE - the value of one sample (the line's name and labels exact)
val() {
	awk -v s="$1" 'index($0, s " ") == 1 { print $NF; found = 1 } END { if (!found) print "absent" }' \
		"$T/metrics.txt"
}
# expect SAMPLE WANT [DESC]
expect() {
	local got
	got=$(val "$1")
	if [ "$got" = "$2" ]; then
		ok "${3:-$1} = $2"
	else
		not_ok "${3:-$1} = $2" "got: $got"
	fi
}
# positive SAMPLE
positive() {
	local got
	got=$(val "$1")
	if [ "$got" != absent ] && "$LIB_PYTHON" -c "import sys; sys.exit(0 if float('$got') > 0 else 1)"; then
		ok "$1 > 0 ($got)"
	else
		not_ok "$1 > 0" "got: $got"
	fi
}

# the numbers the pass itself reports
"$FERRYCTL" -c "$CONF" --json sync >"$T/sync.json" 2>&1
copied=$("$LIB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["copied"])' "$T/sync.json" 2>&1)
check_output "the pass copied four messages (ferryctl sync)" 4 echo "$copied"
expect mailferry_syncd_copied_messages_total "$copied" "copied messages match the pass"
expect mailferry_syncd_copied_bytes_total "$want_bytes" "copied bytes are the messages' sizes"
expect 'mailferry_syncd_duplicates_total{reason="ledger"}' 1
expect 'mailferry_syncd_duplicates_total{reason="already_there"}' 0
expect 'mailferry_syncd_failed_total{reason="refused"}' 0
expect mailferry_syncd_policy_skipped_total 1 "the message over APPENDLIMIT is skipped by policy"
expect 'mailferry_syncd_passes_total{result="missing"}' 1
expect 'mailferry_syncd_passes_total{result="complete"}' 0
expect 'mailferry_syncd_last_pass_result{result="missing"}' 1
expect 'mailferry_syncd_last_pass_result{result="complete"}' 0
expect mailferry_syncd_pass_duration_seconds_count 1
expect 'mailferry_syncd_pass_duration_seconds_bucket{le="+Inf"}' 1
expect 'mailferry_syncd_accounts{state="done"}' 2
expect 'mailferry_syncd_accounts{state="failed"}' 1 "the account missing a message counts as failed"
expect mailferry_syncd_pass_running 0
expect "mailferry_syncd_account_last_pass_result{account=\"alice@$DOMAIN\",result=\"complete\"}" 1
expect "mailferry_syncd_account_last_pass_result{account=\"carol@$DOMAIN\",result=\"missing\"}" 0
expect "mailferry_syncd_account_last_pass_result{account=\"dave@$OTHER\",result=\"missing\"}" 1
expect "mailferry_syncd_account_last_pass_result{account=\"dave@$OTHER\",result=\"complete\"}" 0
positive "mailferry_syncd_account_last_pass_end_timestamp_seconds{account=\"carol@$DOMAIN\"}"
positive mailferry_syncd_last_pass_end_timestamp_seconds
positive 'mailferry_syncd_imap_command_seconds_count{server="source"}'
positive 'mailferry_syncd_imap_command_seconds_count{server="destination"}'
positive 'mailferry_syncd_throttle_waits_total{reason="rate_limit"}'
positive 'mailferry_syncd_mx_answers_total{class="old"}'
expect 'mailferry_syncd_mx_answers_total{class="new"}' 0
expect "mailferry_syncd_cutover_phase{domain=\"$DOMAIN\",phase=\"synced\"}" 1
expect "mailferry_syncd_cutover_phase{domain=\"$DOMAIN\",phase=\"presync\"}" 0
expect "mailferry_syncd_cutover_phase{domain=\"$OTHER\",phase=\"synced\"}" 1
expect "mailferry_syncd_cutover_phase{domain=\"$OTHER\",phase=\"switching\"}" 0
expect "mailferry_syncd_cutover_resolvers{domain=\"$DOMAIN\",class=\"old\"}" 1
# the last-pass end time is the pass's own (within the ferryctl record's second)
fin=$("$LIB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_pass"]["finished"])' "$T/sync.json" 2>&1)
expect mailferry_syncd_last_pass_end_timestamp_seconds "$fin" "the last pass's end time matches ferryctl sync"
if grep -q '^# TYPE mailferry_syncd_imap_command_seconds histogram' "$T/metrics.txt" &&
	grep -q '^mailferry_syncd_info{version="[^"]*"} 1' "$T/metrics.txt"; then
	ok "HELP/TYPE lines and the version sample"
else
	not_ok "HELP/TYPE lines and the version sample"
fi
if command -v promtool >/dev/null 2>&1; then
	check "promtool check metrics accepts the exposition" \
		sh -c 'promtool check metrics <"$1"' sh "$T/metrics.txt"
else
	skip "promtool check metrics accepts the exposition" "promtool not installed"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/status")
check_output "another path is 404" 404 echo "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/metrics")
check_output "POST /metrics is 405" 405 echo "$code"

# a port in use: refused with the reason, exit non-zero
mkconf "127.0.0.1:$HTTP_PORT" | sed "s|^pid_file.*||; s|^state_dir = .*|state_dir = $T/state2|" >"$T/busy.conf"
check_fail "a second daemon on the same [syncd] http port does not start" \
	timeout 30 "$FERRY_SYNCD" -d -c "$T/busy.conf"
if grep -q "\[syncd\] http: cannot listen on 127.0.0.1:$HTTP_PORT" "$CHECK_LOG"; then
	ok "and says it cannot listen there"
else
	not_ok "and says it cannot listen there" "$(tail -3 "$CHECK_LOG")"
fi
stop_pid "$SPAWN_PID"

# [syncd] http empty: no listener, the daemon runs
mkconf "" >"$CONF"
spawn syncd-nohttp "$FERRY_SYNCD" -d -c "$CONF"
LOG=$T/log/syncd-nohttp.log
check "with [syncd] http empty the daemon runs its pass" wait_log "pass 1: done"
if ! grep -q "HTTP /metrics" "$LOG" && ! port_open "$HTTP_PORT"; then
	ok "and listens nowhere"
else
	not_ok "and listens nowhere"
fi
stop_pid "$SPAWN_PID"

# --- the progress line on a terminal ---------------------------------------------------
# A pass of a few seconds (rate-limited) that logs while the line is up.
more() {
	local i
	imap_create "$IMAP_PORT_src" "alice@$DOMAIN" pass Work || return 1
	for i in $(seq 10 29); do
		msg "$T/b$i.eml" "$i"
		imap_append "$IMAP_PORT_src" "alice@$DOMAIN" pass Work "$T/b$i.eml" || return 1
	done
}
check "a folder of twenty more messages" more
mkconf "" | sed 's/^max_messages_per_second = .*/max_messages_per_second = 3/' >"$CONF"
if command -v script >/dev/null 2>&1; then
	timeout 120 script -qfc "$FERRY_SYNCD --once -c $CONF" /dev/null \
		>"$T/tty.out" 2>&1 </dev/null
	"$LIB_PYTHON" - "$T/tty.out" >"$T/tty.check" 2>&1 <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
logs = [m.start() for m in re.finditer(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ferry-syncd\[", data)]
drawn = data.count("\r\x1b[K")
glued = [data[max(0, p - 40):p + 30] for p in logs
         if p > 0 and not (data[p - 1] == "\n" or data.endswith("\x1b[K", 0, p))]
print("logs=%d drawn=%d glued=%d" % (len(logs), drawn, len(glued)))
for g in glued[:3]:
    print("glued: %r" % g)
sys.exit(0 if logs and drawn > 1 and not glued else 1)
PY
	if [ $? -eq 0 ]; then
		ok "on a pty the progress line is drawn and no log line is glued to it ($(head -1 "$T/tty.check"))"
	else
		not_ok "on a pty the progress line is drawn and no log line is glued to it" \
			"$(cat "$T/tty.check")"
	fi
	if grep -aq 'ETA' "$T/tty.out"; then
		ok "the line shows an ETA"
	else
		not_ok "the line shows an ETA" "$(tr '\r' '\n' <"$T/tty.out" | grep -v ferry-syncd | head -3)"
	fi
else
	skip "on a pty the progress line is drawn and no log line is glued to it" "script(1) missing"
	skip "the line shows an ETA" "script(1) missing"
fi
# without a terminal: plain lines only
"$FERRY_SYNCD" --once -c "$CONF" >/dev/null 2>"$T/plain.err"
if [ -s "$T/plain.err" ] && ! grep -q $'[\r\033]' "$T/plain.err"; then
	ok "without a terminal the log has no control characters"
else
	not_ok "without a terminal the log has no control characters" "$(head -3 "$T/plain.err" | cat -v)"
fi

done_testing
