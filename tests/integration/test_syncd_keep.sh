#!/bin/bash
# test_syncd_keep.sh - the daemon keeps logged-in connection pairs between
# passes up to [syncd] keep_connections, even with more accounts than
# connections_per_server: 3 accounts, one working pair at a time, 2 kept.
# Pass 1 logs in 6 times (3 accounts x 2 sides); passes 2 and 3 reuse the
# 2 kept pairs and log in only the third account again (2 logins each);
# new mail on a kept account is still copied; keep_connections = 0 keeps
# nothing.  Every pass checks both sides (destination_check_interval = 0):
# the logins counted are those of the pairs, not of unchanged accounts.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot "$LIB_PYTHON"

[ -x "$FERRY_SYNCD" ] || {
	echo "Bail out! $FERRY_SYNCD not built"
	exit 1
}

DOVECOT_NAME=src check "source dovecot starts" \
	start_dovecot u1:pass u2:pass u3:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
DOVECOT_NAME=dst check "destination dovecot starts" \
	start_dovecot f1:pass f2:pass f3:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
GEN=$top_srcdir/bench/gen_mailbox.py
MAIL=$T/dovecot/src/mail
gen() {		# gen START - 4 new messages in every account's INBOX
	"$LIB_PYTHON" "$GEN" -q --accounts 3 --user u%d --count 4 --start "$1" \
		--folders INBOX --scale 0.1 --maildir "$MAIL" &&
		{ [ "$(id -u)" -ne 0 ] || chown -R mail:mail "$MAIL"; }
}
check "3 source accounts, 4 messages each" gen 0

printf 'u%d pass f%d pass\n' 1 1 2 2 3 3 >"$T/accounts"
chmod 600 "$T/accounts"
mkconf() {	# mkconf KEEP
	write_syncd_conf "$T/syncd.conf" "$IMAP_PORT_src" "$IMAP_PORT_dst" \
		"http =" "parallel = 1" "connections_per_server = 1" \
		"keep_connections = $1" "interval = 1s" \
		"destination_check_interval = 0"
}
dst_count() {	# dst_count USER
	doveadm_cmd dst mailbox status -u "$1" messages INBOX 2>/dev/null |
		sed -n 's/.*messages=\([0-9]*\).*/\1/p'
}
daemon_passes() {	# daemon_passes LOG N - wait until pass N is done
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q "pass $2: done" "$1" && return 0
		sleep 0.2
	done
	return 1
}
# logins LOG N - logins up to the end of pass N
logins() {
	sed -n "1,/pass $2: done/p" "$1" | grep -c "logged in as"
}
run_daemon() {	# run_daemon LOG - start the daemon; sets dpid
	"$FERRY_SYNCD" -c "$T/syncd.conf" -d >"$1" 2>&1 &
	dpid=$!
	at_exit "kill $dpid 2>/dev/null"
}
stop_daemon() {	# exit status of the daemon (a sanitizer report: not 0)
	kill -TERM "$dpid" 2>/dev/null
	wait "$dpid"
}

mkconf 2
run_daemon "$T/log/keep.log"
check "the daemon finishes pass 3" daemon_passes "$T/log/keep.log" 3
L1=$(logins "$T/log/keep.log" 1)
L3=$(logins "$T/log/keep.log" 3)
if [ "$L1" = 6 ] && [ "$L3" = 10 ]; then
	ok "2 of 3 pairs kept: pass 1 logs in 6 times, passes 2 and 3 twice each"
else
	not_ok "2 of 3 pairs kept: pass 1 logs in 6 times, passes 2 and 3 twice each" \
		"logins by pass 1: $L1, by pass 3: $L3
$(grep -E "logged in|pass [0-9]+: done" "$T/log/keep.log")"
fi
check "every account copied" test "$(dst_count f1)$(dst_count f2)$(dst_count f3)" = 444
check "4 more messages in every account" gen 100
caught_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(dst_count f1)$(dst_count f2)$(dst_count f3)" = 888 ] && return 0
		sleep 0.2
	done
	return 1
}
check "later passes on kept and new pairs copy them" caught_up
check "the daemon exits 0 on SIGTERM" stop_daemon
check "the daemon stops on SIGTERM" test -n "$(grep 'stopping on signal' "$T/log/keep.log")"
check "no LOGOUT left hanging: every kept pair logged out" \
	test "$(doveadm_cmd src who 2>/dev/null | grep -c imap)" = 0

mkconf 0
run_daemon "$T/log/nokeep.log"
check "keep_connections = 0: the daemon finishes pass 2" \
	daemon_passes "$T/log/nokeep.log" 2
L2=$(logins "$T/log/nokeep.log" 2)
check "keep_connections = 0: every pass logs in everywhere (12 logins)" \
	test "$L2" = 12
check "keep_connections = 0: the daemon exits 0" stop_daemon

done_testing
