#!/bin/bash
# test_syncd_noop.sh - a --once pass over an account whose source is as
# its last complete pass left it does not log in to the destination while
# the destination was checked less than [syncd] destination_check_interval
# ago.  Two accounts: each step changes one and leaves the other alone;
# the changed one is logged in to on both sides and synced, the other is
# not logged in to on the destination.  Steps: nothing changed, a new
# source message, a flag change (CONDSTORE), a folder created on the
# source, the interval passed (1 s), interval 0, after an incomplete pass
# (a destination login refused), and a folder deleted on the destination
# by hand, noticed by the next pass that checks the destination.  The
# skip is for passes that queue accounts (parallel = 1 here): with
# parallel = 4 over the two accounts both sides are logged in.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot doveadm "$LIB_PYTHON"

[ -x "$FERRY_SYNCD" ] || {
	echo "Bail out! $FERRY_SYNCD not built"
	exit 1
}

DOVECOT_NAME=src check "source dovecot starts" \
	start_dovecot u1:pass u2:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
DOVECOT_NAME=dst check "destination dovecot starts" \
	start_dovecot f1:pass f2:pass || {
	echo "Bail out! dovecot does not start"
	exit 1
}
MAIL=$T/dovecot/src/mail
check "2 source accounts, 4 messages in INBOX and Archive" \
	"$LIB_PYTHON" "$top_srcdir/bench/gen_mailbox.py" -q --accounts 2 \
	--user u%d --count 8 --folders INBOX,Archive --scale 0.1 \
	--maildir "$MAIL"
[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$MAIL"

accounts() {	# accounts F1PASS
	printf 'u1 pass f1 %s\nu2 pass f2 pass\n' "$1" >"$T/accounts"
	chmod 600 "$T/accounts"
}
# parallel = 1: the skip is for passes that queue accounts (two here)
mkconf() {	# mkconf INTERVAL (empty: the default)
	write_syncd_conf "$T/syncd.conf" "$IMAP_PORT_src" "$IMAP_PORT_dst" \
		"http =" "parallel = 1" ${1:+"destination_check_interval = $1"}
}
N=0
once() {	# once - a --once pass; its log in $T/log/once$N.log
	N=$((N + 1))
	LOG=$T/log/once$N.log
	"$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/log/once$N.out" \
		2>"$LOG"
}
dlogins() {	# dlogins USER - destination logins of USER in the last pass
	grep -c "logged in as $1\$" "$LOG"
}
skipped() {	# skipped SRCUSER - the pass logged the skip for SRCUSER
	grep -q "$1: source unchanged since the pass of .*, destination not checked (checked " "$LOG"
}
dst_count() {	# dst_count USER FOLDER
	doveadm_cmd dst mailbox status -u "$1" messages "$2" 2>/dev/null |
		sed -n 's/.*messages=\([0-9]*\).*/\1/p'
}
# step NAME CHANGED OTHER - CHANGED logged in on the destination, OTHER not
step() {
	if [ "$(dlogins "$3")" = 0 ] && skipped "${3/f/u}" &&
		[ "$(dlogins "$2")" -ge 1 ] && ! skipped "${2/f/u}"; then
		ok "$1: $2 checked, $3 not"
	else
		not_ok "$1: $2 checked, $3 not" \
			"$(grep -E "logged in as|unchanged|done in" "$LOG")"
	fi
}

accounts pass
mkconf ""
check "pass 1 copies both accounts" once
check "pass 1 logs in to both destinations" \
	test "$(dlogins f1)$(dlogins f2)" = 11
check "both accounts complete" test "$(dst_count f1 INBOX)$(dst_count f2 Archive)" = 44

check "pass 2, nothing changed, exits 0" once
if [ "$(dlogins f1)$(dlogins f2)" = 00 ] && skipped u1 && skipped u2; then
	ok "nothing changed: no destination login, the skip logged"
else
	not_ok "nothing changed: no destination login, the skip logged" \
		"$(grep -E "logged in as|unchanged|done in" "$LOG")"
fi
check "the report still shows every message there" \
	grep -q "all 16 messages of the source are on the destination" \
	"$T/log/once$N.out"
check "the pass counts the skipped destination checks" \
	grep -q "2 of 2 accounts unchanged on the source" "$LOG"

# a pass that starts every account at once (parallel = 4 > 2 accounts)
# has nothing to gain from the skip: both sides are logged in together
write_syncd_conf "$T/syncd4.conf" "$IMAP_PORT_src" "$IMAP_PORT_dst" \
	"http =" "parallel = 4"
N=$((N + 1))
LOG=$T/log/once$N.log
"$FERRY_SYNCD" -c "$T/syncd4.conf" --once >"$T/log/once$N.out" 2>"$LOG"
check_output "parallel = 4, nothing changed: exit 0" 0 echo $?
if [ "$(dlogins f1)$(dlogins f2)" = 11 ] && ! skipped u1 && ! skipped u2 &&
	grep -q "all 16 messages of the source are on the destination" \
		"$T/log/once$N.out"; then
	ok "parallel = 4, 2 accounts: both destinations checked, no skip"
else
	not_ok "parallel = 4, 2 accounts: both destinations checked, no skip" \
		"$(grep -E "logged in as|unchanged|done in" "$LOG")"
fi

msg() {		# msg USER FOLDER - one new message on the source
	printf 'From: a@example.org\r\nTo: b@example.org\r\nSubject: new %s\r\nMessage-ID: <new%s@example.org>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n' \
		"$RANDOM" "$RANDOM$RANDOM" |
		doveadm_cmd src save -u "$1" -m "$2"
}
check "a new message in u1's INBOX" msg u1 INBOX
check "pass 3 exits 0" once
step "a new source message" f1 f2
check "the new message is copied" test "$(dst_count f1 INBOX)" = 5

check "a flag set in u2's Archive" \
	doveadm_cmd src flags add -u u2 '\Flagged' mailbox Archive uid 1
check "pass 4 exits 0" once
step "a flag change (CONDSTORE)" f2 f1
check "the flag is on the destination" test "$(doveadm_cmd dst search -u f2 \
	mailbox Archive FLAGGED 2>/dev/null | wc -l)" = 1

check "a folder created in u1's source" \
	doveadm_cmd src mailbox create -u u1 Projects
check "pass 5 exits 0" once
step "a folder created on the source" f1 f2
check "the folder is created on the destination" \
	test -n "$(doveadm_cmd dst mailbox list -u f1 2>/dev/null | grep -x Projects)"

check "pass 6 (nothing changed) exits 0" once
check "nothing changed: neither destination logged in to" \
	test "$(dlogins f1)$(dlogins f2)" = 00
mkconf 1s
sleep 2
check "pass 7 (interval 1 s: passed) exits 0" once
check "the interval passed: both destinations logged in to" \
	test "$(dlogins f1)$(dlogins f2)" = 11

mkconf 0
check "pass 8 (interval 0) exits 0" once
check "interval 0: both destinations logged in to" \
	test "$(dlogins f1)$(dlogins f2)" = 11
check "interval 0: no skip logged" test "$(grep -c unchanged "$LOG")" = 0

accounts wrong
once
rc=$?
check "pass 9: f1's destination login refused, the pass fails" \
	test "$rc" -ne 0 -a "$(dlogins f1)" = 0
accounts pass
mkconf ""
check "pass 10 exits 0" once
step "after an incomplete pass" f1 f2

check "u2's Archive deleted on the destination by hand" \
	doveadm_cmd dst mailbox delete -u f2 Archive
check "pass 11 exits 0" once
check "within the interval the deletion is not seen: f2 not logged in to" \
	test "$(dlogins f2)" = 0
mkconf 0
check "pass 12 (interval 0) exits 0" once
check "the next pass that checks the destination copies Archive again" \
	test "$(dst_count f2 Archive)" = 4

# The daemon: a pair whose destination was never logged in to is kept
# between passes too, so an unchanged account costs no login at all after
# the first pass; a change logs in to its destination once.
mkconf ""
echo "interval = 1s" >>"$T/syncd.conf"
DLOG=$T/log/daemon.log
"$FERRY_SYNCD" -c "$T/syncd.conf" -d >"$DLOG" 2>&1 &
dpid=$!
at_exit "kill $dpid 2>/dev/null"
daemon_passes() {	# daemon_passes N - wait until pass N is done
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q "pass $1: done" "$DLOG" && return 0
		sleep 0.2
	done
	return 1
}
check "the daemon finishes pass 3" daemon_passes 3
upto() {	# upto N PATTERN - lines matching PATTERN up to pass N's end
	sed -n "1,/pass $1: done/p" "$DLOG" | grep -c "$2"
}
if [ "$(upto 3 'logged in as u')" = 2 ] && [ "$(upto 3 'logged in as f')" = 0 ] &&
	[ "$(upto 3 'source unchanged since')" = 6 ]; then
	ok "daemon: 3 passes, 2 source logins, none on the destination"
else
	not_ok "daemon: 3 passes, 2 source logins, none on the destination" \
		"$(grep -E "logged in as|unchanged|done in" "$DLOG")"
fi
check "a new message in u2's Archive" msg u2 Archive
caught_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(dst_count f2 Archive)" = 5 ] && return 0
		sleep 0.2
	done
	return 1
}
check "the daemon copies it" caught_up
check "to do so it logged in to f2's destination once, to f1's never" \
	test "$(grep -c 'logged in as f2$' "$DLOG")$(grep -c 'logged in as f1$' "$DLOG")" = 10
kill -TERM "$dpid" 2>/dev/null
check "the daemon exits 0 on SIGTERM" wait "$dpid"

done_testing
