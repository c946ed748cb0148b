#!/bin/bash
# test_cutover.sh - a whole cutover against real servers, end to end
# (DESIGN.md §6 "Cutover", §8 the phases).
#
#   senders --(MX per resolver)--> old MX: ferry-relay --> Postfix B --LMTP--> Dovecot B
#                                   |  (copy_to: Postfix A --LMTP--> Dovecot A)
#            \------------------> new MX: Postfix B        (the new host)
#   ferry-syncd -d: Dovecot A -> Dovecot B, watching the MX of example.test
#   through two private dnsmasq resolvers; relay and syncd share one LMDB.
#
# Dovecot A holds a history of 550 messages in many folders before the
# start.  A sender loop sends throughout: message i asks resolver i mod 2
# for the MX (dig) and goes to whatever it answers (the relay for
# old-mx.example.test, Postfix B for mx1.newprovider.test); every 250 is
# recorded.  Then: the phase goes presync -> synced; resolver 1 flips to
# the new MX (switching: a catch-up pass must start at once); Postfix B
# goes down for 20 s while the relay forwards (the relay queues, its
# dual-reception copies sit in Dovecot A with pending ledger entries while
# catch-up passes run); during that, ferry-relay is killed with SIGKILL
# under a burst of mail and restarted, and ferry-syncd is killed with
# SIGKILL in the middle of a catch-up pass (200 late messages filed on the
# old host) and restarted; Postfix B comes back; resolver 2 flips
# (dual-reception); the new MX goes down again and three stragglers
# (senders with a cached MX) still reach the relay, which keeps them
# queued past quiet_period: the domain must stay open until they are
# delivered; one more straggler after that must keep it open for
# quiet_period (the relay's last inbound message); then it closes.
#
# Asserted at the end, by reading both IMAP servers (not ferry-syncd's
# state): every message acknowledged with 250 by anyone is in B exactly
# once (Message-ID and body hash), every message of A too, nothing
# unknown; the history's folders, flags and INTERNALDATEs are intact;
# the phase history is presync -> synced -> switching -> dual-reception
# -> closed; the first catch-up pass started within check_interval + 10 s
# of the first `new` answer; the verdict said safe-to-retire only once
# closed, not before quiet_period after the last straggler and every
# resolver's `new`, and not before the last message reached B.
#
# Times are scaled down by configuration only: check_interval 1s,
# catchup_interval 3s, quiet_period 20s, retry_initial 1s.  [syncd]
# interval is 45s, longer than the whole switching phase, so a pass
# soon after the switch can only be the catch-up (the test fails when
# the catch-up is disabled).  The resolvers' bad answers (a lie, a
# timeout, SERVFAIL) are test_cutover_dns.sh's.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot doveadm postfix dnsmasq dig "$FERRY_RELAY" "$FERRY_SYNCD" \
	"$FERRYCTL" "$LIB_PYTHON"
[ -x /usr/lib/dovecot/lmtp ] ||
	skip_all "Dovecot's lmtp is not installed (dovecot-lmtpd)"
# Postfix's master runs only as root: Postfix A and B cannot start
# otherwise (CI runs the suite as root).
[ "$(id -u)" -eq 0 ] || skip_all "private Postfix instances need root"
export LC_ALL=C

TOOL=$TEST_DATA/cutover_tool.py
DIGEST=$TEST_DATA/mailbox_digest.py
GEN=$top_srcdir/bench/gen_mailbox.py
DOMAIN=example.test
OLD_MX=old-mx.example.test
NEW_MX=mx1.newprovider.test
USERS="alice@$DOMAIN bob@$DOMAIN"
CHECK_INTERVAL=1
CATCHUP=3
QUIET=20
OUTAGE=20
# Sanitizer builds run the daemons about 3x slower: wait longer (the
# configuration and the assertions stay the same).
SLOW=1
if grep -q '__asan_init\|__tsan_init' "$FERRY_SYNCD" 2>/dev/null; then
	SLOW=3
fi
STATE=$T/state
CONF=$T/mailferry.conf
SENT=$T/sent.log
WATCH=$T/watch.log
mkdir -p "$STATE"
SECONDS=0

# --- the cast ------------------------------------------------------------------

userargs=()
for u in $USERS; do userargs+=("$u:pass"); done
DOVECOT_NAME=A check "Dovecot A (the old host) starts" \
	start_dovecot "${userargs[@]}" || done_testing
# Epoch timestamps: when each message was delivered into B.
DOVECOT_NAME=B DOVECOT_EXTRA='log_timestamp = "%s "' \
	check "Dovecot B (the new host) starts" \
	start_dovecot "${userargs[@]}" || done_testing
check "Postfix A (old local delivery, LMTP into Dovecot A) starts" \
	start_postfix A "lmtp:inet:127.0.0.1:$LMTP_PORT_A" || done_testing
check "Postfix B (the new MX, LMTP into Dovecot B) starts" \
	start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B" || done_testing

# The history: 350 + 200 generated messages spread over the generator's
# folders (nested, non-ASCII, "Sent Items"...), flags and dates of years.
fill_history() {
	local u=alice@$DOMAIN
	"$LIB_PYTHON" "$GEN" -q --seed 21 --count 350 --scale 0.05 --start 0 \
		--maildir "$T/dovecot/A/mail/$u/Maildir" || return 1
	u=bob@$DOMAIN
	"$LIB_PYTHON" "$GEN" -q --seed 22 --count 200 --scale 0.05 --start 5000 \
		--maildir "$T/dovecot/A/mail/$u/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/A/mail"
	for u in $USERS; do
		doveadm_cmd A force-resync -u "$u" '*' || return 1
		"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_A" "$u" pass >"$T/history.$u" || return 1
		# Dovecot creates B's maildir at the first login.
		imap_cmd "$IMAP_PORT_B" "$u" pass NOOP >/dev/null || return 1
	done
	[ "$(cat "$T"/history.* | wc -l)" -eq 550 ] && [ "$(cut -f1 "$T/history.alice@$DOMAIN" | sort -u | wc -l)" -ge 5 ]
}
check "550 history messages in several folders of Dovecot A" fill_history ||
	done_testing

records() { # records old|new - the zone as one resolver serves it
	local mx=$OLD_MX
	[ "$1" = new ] && mx=$NEW_MX
	printf 'MX %s 10 %s\nA %s 127.0.0.1\nA %s 127.0.0.1\n' \
		"$DOMAIN" "$mx" "$OLD_MX" "$NEW_MX"
}
check "resolver r1 (dnsmasq) answers the old MX" start_dns_named r1 < <(records old)
check "resolver r2 (dnsmasq) answers the old MX" start_dns_named r2 < <(records old)

RELAY_PORT=$(free_port)
HTTP_PORT=$(free_port)
for u in $USERS; do printf '%s pass %s pass\n' "$u" "$u"; done >"$T/accounts"
chmod 600 "$T/accounts"
cat >"$CONF" <<EOF
[global]
state_dir = $STATE
log = stderr
log_level = info
[relay]
listen = 127.0.0.1:$RELAY_PORT
hostname = $OLD_MX
domains = $DOMAIN
pid_file = $T/relay.pid
[forward]
upstream = 127.0.0.1:$POSTFIX_PORT_B
copy_to = 127.0.0.1:$POSTFIX_PORT_A
tls = none
concurrency = 5
connect_timeout = 2s
retry_initial = 1s
retry_max = 2s
[checks]
; nothing may leave loopback
spf = off
dkim = off
[control]
socket = $T/control.sock
http = 127.0.0.1:$HTTP_PORT
[syncd]
http =
source = imap://127.0.0.1:$IMAP_PORT_A?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_B?tls=none
accounts = $T/accounts
interval = 45s
max_messages_per_second = 200
pid_file = $T/syncd.pid
[cutover]
domains = $DOMAIN
resolvers = 127.0.0.1:$DNS_PORT_r1, 127.0.0.1:$DNS_PORT_r2
new_mx = *.newprovider.test
old_mx = $OLD_MX
check_interval = ${CHECK_INTERVAL}s
quiet_period = ${QUIET}s
catchup_interval = ${CATCHUP}s
EOF
check "the configuration passes ferry-syncd -t" "$FERRY_SYNCD" -t -c "$CONF"

# --- helpers -------------------------------------------------------------------

RELAY_RUN=0
start_relay() {
	RELAY_RUN=$((RELAY_RUN + 1))
	spawn "relay-$RELAY_RUN" "$FERRY_RELAY" -d -c "$CONF"
	RELAY_PID=$SPAWN_PID
	wait_port "$RELAY_PORT" $((10 * SLOW))
}
SYNCD_RUN=0
start_syncd() {
	SYNCD_RUN=$((SYNCD_RUN + 1))
	spawn "syncd-$SYNCD_RUN" "$FERRY_SYNCD" -d -c "$CONF"
	SYNCD_PID=$SPAWN_PID
	sleep 0.2
	_lib_alive "$SYNCD_PID"
}
status_json() { "$FERRYCTL" -c "$CONF" status --json; }

# wait_phase PHASE SECS - until the watcher has seen PHASE
wait_phase() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		awk -F'\t' -v p="$1" '$3 == p { f = 1 } END { exit !f }' "$WATCH" 2>/dev/null &&
			return 0
		sleep 0.1
	done
	echo "phase $1 not seen after $2 s; the watcher saw:" >&2
	cat "$WATCH" >&2
	return 1
}

relay_queue() {
	"$FERRYCTL" -c "$CONF" --json queue 2>/dev/null |
		"$LIB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}
# wait_drained SECS - the relay's queue and Postfix B's queue are empty
wait_drained() {
	local i q p
	for ((i = 0; i < $1 * 4; i++)); do
		q=$(relay_queue) && p=$(postfix_queue_count B) &&
			[ "$q" = 0 ] && [ "$p" = 0 ] && return 0
		sleep 0.25
	done
	echo "after $1 s: relay queue ${q:-?}, Postfix B queue ${p:-?}" >&2
	return 1
}

# acked WHERE - messages acknowledged so far sent to the relay (old) or
# to Postfix B (new)
acked() {
	local port=$RELAY_PORT
	[ "$1" = new ] && port=$POSTFIX_PORT_B
	awk -F'\t' -v p="$port" '$5 == p && $6 == 250 { n++ } END { print n + 0 }' "$SENT"
}

LATE=alice@$DOMAIN
late_in_b() {
	find "$T/dovecot/B/mail/$LATE/Maildir/.Late" -type f \
		\( -path '*/cur/*' -o -path '*/new/*' \) 2>/dev/null | wc -l
}

# --- the run -------------------------------------------------------------------

: >"$SENT"
check "ferry-relay starts (the old MX)" start_relay || done_testing
spawn watcher "$LIB_PYTHON" "$TOOL" watch "$WATCH" --ferryctl "$FERRYCTL" \
	--conf "$CONF" --stop "$T/stop.watch" --every 0.5
check "ferry-syncd -d starts" start_syncd || done_testing
spawn sender "$LIB_PYTHON" "$TOOL" send "$SENT" \
	--resolvers "$DNS_PORT_r1,$DNS_PORT_r2" --domain "$DOMAIN" \
	--route "$OLD_MX=$RELAY_PORT" --route "$NEW_MX=$POSTFIX_PORT_B" \
	--rcpts "alice@$DOMAIN,bob@$DOMAIN" --every 0.3 --count 1000 \
	--stop "$T/stop.send"
SENDER_PID=$SPAWN_PID

check "the phase reaches synced once the first full pass is done" \
	wait_phase synced $((60 * SLOW)) || done_testing
"$FERRYCTL" -c "$CONF" status >"$T/status.before" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q synced "$T/status.before"; then
	ok "ferryctl status before the switch: synced"
else
	not_ok "ferryctl status before the switch: synced" "exit $rc" "$(cat "$T/status.before")"
fi
diag "ferryctl status before the switch:" "$(cat "$T/status.before")"
sleep 2

# Resolver 1 switches: the catch-up pass must start at once.
check "r1 switches to the new MX" update_dns_named r1 < <(records new)
T_FLIP1=$(date +%s)
check "the phase reaches switching" wait_phase switching $((10 * SLOW))

# The new MX goes down while the relay forwards: the relay queues, the
# old host's copies wait in Dovecot A with pending ledger entries while
# catch-up passes run every catchup_interval.
sleep 1
stop_postfix_idle B
T_DOWN=$(date +%s)
ok "Postfix B (the new MX) is down"

# kill -9 of the relay under a burst of mail, and a restart.
sleep 3
relay_before=$(acked old)
spawn burst "$LIB_PYTHON" "$TOOL" burst "$SENT" --port "$RELAY_PORT" \
	--rcpts "alice@$DOMAIN,bob@$DOMAIN" --count 150 --threads 6
BURST_PID=$SPAWN_PID
for ((i = 0; i < 100; i++)); do
	[ "$(acked old)" -ge $((relay_before + 15)) ] && break
	sleep 0.02
done
burst_alive=no
_lib_alive "$BURST_PID" && burst_alive=yes
kill -KILL -- "-$RELAY_PID"
in_burst=$(($(acked old) - relay_before))
stop_pid "$RELAY_PID"
check "ferry-relay restarts after kill -9" start_relay
if [ "$in_burst" -ge 5 ] && [ "$burst_alive" = yes ]; then
	ok "the relay was killed under load ($in_burst messages of the burst acknowledged, the burst still running)"
else
	not_ok "the relay was killed under load" "$in_burst acknowledged, burst alive: $burst_alive"
fi
for ((i = 0; i < 300; i++)); do _lib_alive "$BURST_PID" || break; sleep 0.1; done
stop_pid "$BURST_PID"
dstatus=$(status_json | "$LIB_PYTHON" -c 'import json,sys
d = json.load(sys.stdin)["domains"][0]
print(d["phase"], d["verdict"])' 2>&1)
if [ "$dstatus" = "switching not-yet" ]; then
	ok "ferryctl status during the outage: switching, not-yet"
else
	not_ok "ferryctl status during the outage: switching, not-yet" "got: $dstatus"
fi
"$FERRYCTL" -c "$CONF" status >"$T/status.during" 2>&1
diag "ferryctl status during the outage:" "$(cat "$T/status.during")"

# kill -9 of ferry-syncd in the middle of a catch-up pass: users still on
# the old host filed 200 more messages; the kill lands once some of them
# reached B.
late_mail() {
	"$LIB_PYTHON" "$GEN" -q --seed 23 --count 200 --scale 0.05 --start 9000 \
		--folder Late --maildir "$T/dovecot/A/mail/$LATE/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/A/mail"
	doveadm_cmd A force-resync -u "$LATE" Late
}
check "200 late messages filed on the old host" late_mail
killed_at=
for ((i = 0; i < 30 * SLOW * 50; i++)); do
	n=$(late_in_b)
	if [ "$n" -ge 20 ]; then
		kill -KILL -- "-$SYNCD_PID"
		killed_at=$(late_in_b)
		break
	fi
	sleep 0.02
done
stop_pid "$SYNCD_PID"
if [ -n "$killed_at" ] && [ "$killed_at" -lt 200 ]; then
	ok "ferry-syncd killed with SIGKILL during a catch-up pass ($killed_at of 200 late messages in B)"
else
	not_ok "ferry-syncd killed with SIGKILL during a catch-up pass" \
		"late messages in B: ${killed_at:-never 20 within the wait} ($(late_in_b) now)"
fi
check "ferry-syncd restarts after kill -9" start_syncd

# The new MX is back after the outage; the relay delivers its queue.
while [ $(($(date +%s) - T_DOWN)) -lt "$OUTAGE" ]; do sleep 0.2; done
check "Postfix B is back after ${OUTAGE} s" start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B"
relay_during=$(awk -F'\t' -v p="$RELAY_PORT" -v a="$T_DOWN" \
	'$5 == p && $6 == 250 && $1 >= a { n++ } END { print n + 0 }' "$SENT")
check "the relay's queue drains into the new MX" wait_drained $((30 * SLOW))
if [ "$relay_during" -ge 20 ]; then
	ok "the relay accepted $relay_during messages while the new MX was down"
else
	not_ok "the relay accepted enough messages while the new MX was down" "only $relay_during"
fi

# Resolver 2 switches too: dual reception.
check "r2 switches to the new MX" update_dns_named r2 < <(records new)
T_FLIP2=$(date +%s)
check "the phase reaches dual-reception" wait_phase dual-reception $((10 * SLOW))
"$FERRYCTL" -c "$CONF" status >"$T/status.dual" 2>&1
diag "ferryctl status in dual reception:" "$(cat "$T/status.dual")"

# Stragglers: senders with the old MX cached still reach the relay, and
# the new MX is down once more, so the relay must keep them queued (their
# copies sit in Dovecot A, pending, while catch-up passes run).
stop_postfix_idle B
stragglers() {
	local k
	for k in 1 2 3; do
		sleep 2
		[ "$("$LIB_PYTHON" "$TOOL" once "$SENT" --port "$RELAY_PORT" \
			--rcpts "bob@$DOMAIN" --tag straggler)" = 250 ] || return 1
	done
}
check "three stragglers reach the relay after the switch, the new MX down again" stragglers
T_STRAGGLER=$(awk -F'\t' '$2 == "straggler" && $6 == 250 { t = $1 } END { print int(t) }' "$SENT")
# quiet_period after the last straggler and after every resolver's new
# answer, the relay's queue still holds them: the domain stays open.
held_open() {
	local until=$((T_STRAGGLER + QUIET + 3)) got
	while [ "$(date +%s)" -lt "$until" ]; do sleep 0.25; done
	got=$(status_json | "$LIB_PYTHON" -c 'import json,sys
d = json.load(sys.stdin)["domains"][0]
print(d["phase"], d["verdict"], any("deferred" in o for o in d["outstanding"]))')
	echo "$got"
	[ "$got" = "dual-reception not-yet True" ] &&
		! awk -F'\t' '$3 == "closed" || $4 == "safe-to-retire" { f = 1 } END { exit !f }' "$WATCH"
}
check "quiet_period later, the deferred stragglers keep the domain open" held_open
# One more straggler, and the new MX is back: once the queue is empty, the
# relay's last inbound message alone must hold the domain open for
# quiet_period.
check "a last straggler reaches the relay" \
	test "$("$LIB_PYTHON" "$TOOL" once "$SENT" --port "$RELAY_PORT" \
		--rcpts "alice@$DOMAIN" --tag straggler)" = 250
T_STRAGGLER=$(awk -F'\t' '$2 == "straggler" && $6 == 250 { t = $1 } END { print int(t) }' "$SENT")
check "Postfix B is back" start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B"
check "the relay delivers the stragglers" wait_drained $((20 * SLOW))

check "the domain closes: safe-to-retire" \
	wait_phase closed $((QUIET + 3 * CATCHUP + 30 * SLOW))
touch "$T/stop.send"
for ((i = 0; i < 100; i++)); do _lib_alive "$SENDER_PID" || break; sleep 0.1; done
check "the senders are done, both queues empty" wait_drained $((20 * SLOW))
sleep 1
touch "$T/stop.watch"
"$FERRYCTL" -c "$CONF" status >"$T/status.after" 2>&1
diag "ferryctl status after:" "$(cat "$T/status.after")"

# --- the evidence --------------------------------------------------------------

check "every acknowledged message, every message of A: in B exactly once" \
	"$LIB_PYTHON" "$TOOL" check --old "$IMAP_PORT_A" --new "$IMAP_PORT_B" \
	--users "alice@$DOMAIN:pass,bob@$DOMAIN:pass" --sent "$SENT"
diag "$(tail -n 1 "$CHECK_LOG")"
diag "acknowledged: $(acked old) by the relay, $(acked new) by the new MX"
if [ "$(acked old)" -ge 30 ] && [ "$(acked new)" -ge 20 ]; then
	ok "senders reached both MXs"
else
	not_ok "senders reached both MXs" "old $(acked old), new $(acked new)"
fi

history_intact() {
	local u bad=0
	for u in $USERS; do
		"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_B" "$u" pass >"$T/final.$u" || return 1
		# Every history line (folder, Message-ID, whole-message hash,
		# flags, INTERNALDATE) is in B; ferry-syncd maps the localised
		# names of the special folders to the destination's (DESIGN.md
		# §6), Dovecot B's defaults here.
		sed -e 's|^Sent Items\t|Sent\t|' -e 's|^Deleted Items\t|Trash\t|' \
			-e 's|^Junk E-mail\t|Junk\t|' "$T/history.$u" | sort >"$T/history.$u.mapped"
		if [ -n "$(comm -23 "$T/history.$u.mapped" "$T/final.$u")" ]; then
			echo "$u: history lines missing or changed in B:"
			comm -23 "$T/history.$u.mapped" "$T/final.$u" | head -n 5
			bad=1
		fi
	done
	return $bad
}
check "history intact in B: folders, bytes, flags, INTERNALDATEs" history_intact

status_json >"$T/final.json"
check_output "the phase history: presync -> synced -> switching -> dual-reception -> closed" \
	"presync synced switching dual-reception closed" \
	"$LIB_PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
h = d["history"]
p = [h[0]["from"]] if h and h[0]["from"] else []
p += [e["to"] for e in h]
print(" ".join(p))' "$T/final.json"
check_output "the final verdict: closed, safe-to-retire" "closed safe-to-retire" \
	"$LIB_PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
print(d["phase"], d["verdict"])' "$T/final.json"

# epoch TIME - RFC 3339 UTC to seconds
epoch() {
	"$LIB_PYTHON" -c 'import calendar, sys, time
print(calendar.timegm(time.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ")))' "$1"
}
T_SWITCH=$(epoch "$("$LIB_PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
print(d["switch_seen_at"] or [e["at"] for e in d["history"] if e["to"] == "switching"][0])' "$T/final.json")")
T_DUAL=$(epoch "$("$LIB_PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
print([e["at"] for e in d["history"] if e["to"] == "dual-reception"][0])' "$T/final.json")")
# The first "pass N: starting" after the switch, from syncd's logs.
T_CATCHUP=
while read -r ts; do
	e=$(epoch "$ts") || continue
	if [ "$e" -ge "$T_SWITCH" ]; then T_CATCHUP=$e; break; fi
done < <(cat "$T"/log/syncd-*.log | sed -n 's/^\([0-9T:-]*Z\) .*: pass [0-9]*: starting.*/\1/p')
if [ -n "$T_CATCHUP" ] && [ "$T_SWITCH" -ge "$T_FLIP1" ] &&
	[ $((T_CATCHUP - T_SWITCH)) -le $((CHECK_INTERVAL + 10)) ]; then
	ok "the catch-up pass started $((T_CATCHUP - T_SWITCH)) s after the first new answer (<= check_interval + 10 s)"
else
	not_ok "the catch-up pass started within check_interval + 10 s of the first new answer" \
		"r1 flipped at $T_FLIP1, switch seen at $T_SWITCH, first pass after it: ${T_CATCHUP:-none}" \
		"$(grep -h 'pass [0-9]*: starting' "$T"/log/syncd-*.log)"
fi
diag "$(grep -h 'pass [0-9]*: starting' "$T"/log/syncd-*.log | head -n 4)"

# When the verdict first said safe-to-retire (the watcher polled every
# 0.5 s) against the evidence it needs.
T_SAFE=$(awk -F'\t' '$4 == "safe-to-retire" { print int($1); exit }' "$WATCH")
T_CLOSED=$(awk -F'\t' '$3 == "closed" { print $1; exit }' "$WATCH")
# ferryctl evaluates the verdict when it runs; the daemon moves the phase
# to closed at its next check: at most check_interval (+ 2 s) apart.
early=$(awk -F'\t' -v c="${T_CLOSED:-0}" -v w=$((CHECK_INTERVAL + 2)) \
	'$4 == "safe-to-retire" && $3 != "closed" && (c == 0 || $1 + w < c)' "$WATCH")
later=$(awk -F'\t' -v c="${T_CLOSED:-0}" '$1 >= c && ($3 != "closed" || $4 != "safe-to-retire")' "$WATCH")
T_LAST_B=$(awk '/saved mail to/ { t = $1 } END { print t + 0 }' "$DOVECOT_LOG_B")
diag "r1 flip $T_FLIP1, outage $T_DOWN, r2 flip $T_FLIP2, dual $T_DUAL, last straggler $T_STRAGGLER," \
	"last delivery of anything into B $T_LAST_B, first safe-to-retire ${T_SAFE:-never}"
if [ -z "$early" ] && [ -z "$later" ] && [ -n "$T_SAFE" ] && [ -n "$T_CLOSED" ]; then
	ok "the verdict says safe-to-retire only with phase closed (within one check), and stays so"
else
	not_ok "the verdict says safe-to-retire only with phase closed (within one check), and stays so" \
		"$early" "$later" "$(cat "$WATCH")"
fi
# The relay and the history keep whole seconds: one second of slack.
if [ -n "$T_SAFE" ] && [ "$T_SAFE" -ge $((T_STRAGGLER + QUIET - 1)) ] &&
	[ "$T_SAFE" -ge $((T_DUAL + QUIET - 1)) ]; then
	ok "safe-to-retire not before quiet_period after the last straggler and every resolver's new answer"
else
	not_ok "safe-to-retire not before quiet_period after the last straggler and every resolver's new answer" \
		"first safe ${T_SAFE:-never}, last straggler $T_STRAGGLER, dual $T_DUAL, quiet $QUIET"
fi
# Every message reached B before the verdict (the senders stopped only
# after it, and those went to the new MX, not the old host): compare with
# the last delivery of a message the relay or the old host handled.
last_old=$(awk -F'\t' -v p="$RELAY_PORT" '$5 == p && $6 == 250 { print $7 }' "$SENT" |
	"$LIB_PYTHON" -c 'import sys
ids = set(l.strip() for l in sys.stdin)
t = 0
for l in open(sys.argv[1]):
    f = l.split(" ", 1)
    if "saved mail to" in l and "msgid=" in l:
        m = l.split("msgid=", 1)[1].split(": saved", 1)[0]
        if m in ids:
            t = max(t, int(f[0]))
print(t)' "$DOVECOT_LOG_B")
if [ -n "$T_SAFE" ] && [ "$last_old" -gt 0 ] && [ "$T_SAFE" -ge "$last_old" ]; then
	ok "safe-to-retire not before the last straggler was delivered into B ($((T_SAFE - last_old)) s after)"
else
	not_ok "safe-to-retire not before the last straggler was delivered into B" \
		"first safe ${T_SAFE:-never}, last relay message into B at $last_old"
fi

# ferryctl status reads LMDB: it reports with both daemons stopped.
stop_pid "$SYNCD_PID"
stop_pid "$RELAY_PID"
check "ferryctl status with both daemons stopped: still closed, safe-to-retire" \
	sh -c "'$FERRYCTL' -c '$CONF' status | grep -q 'safe-to-retire'"
diag "test_cutover.sh ran for $SECONDS s"

done_testing
