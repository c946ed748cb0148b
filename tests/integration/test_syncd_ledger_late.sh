#!/bin/bash
# test_syncd_ledger_late.sh - the relay's first deliveries land while a
# pass is running that began with an empty ledger (DESIGN.md §4, promise
# 2 of §1: the relay and a pass never both deliver one message).
#
# At the start of a cutover the relay's first message can reach the old
# host (its dual-reception copy) while the first full pass is under way:
# the ledger was empty when the pass began, and holds the message's
# entry by the time the pass lists the folder.  A proxy in front of the
# source holds the answer to the pass's login until the test has
# delivered two messages to the source and written their entries the
# way the relay does (one delivered, one still pending); the pass must
# look them up and copy neither, and copy the history.  The next pass,
# after the pending entry is settled as delivered, copies nothing.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py
LEDGER_PUT=$top_builddir/tests/integration/ledger_put

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

fill() {
	"$LIB_PYTHON" "$GEN" -q --seed 6 --count 10 --scale 0.01 --folder INBOX \
		--maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
check "source: a history of 10 messages" fill

# relayed FILE NAME - a message as the relay's copy reaches the old host
relayed() {
	printf 'From: Sender <s@example.com>\r\nTo: alice@example.org\r\n' >"$1"
	printf 'Subject: %s\r\nDate: %s\r\n' "$2" "$(date -R)" >>"$1"
	printf 'Message-ID: <%s.%s@relayed.test>\r\n\r\n' "$2" "$$" >>"$1"
	printf 'Hello, this is %s.\r\n' "$2" >>"$1"
}
relayed "$T/sent.eml" relayed-sent
relayed "$T/held.eml" relayed-held

start_hold_proxy "$SRC" "gate:login=(?:AUTHENTICATE|LOGIN) "

write_syncd_conf "$T/syncd.conf" "$PROXY" "$DST"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json \
	>"$T/pass1.json" 2>"$T/log/syncd1.log" &
syncd_pid=$!
for i in $(seq 600); do grep -q '^gate ' "$T/proxy.log" 2>/dev/null && break; sleep 0.05; done
check "the pass has begun and waits for the source's login" grep -q '^gate ' "$T/proxy.log"
late() {
	imap_append "$SRC" alice pass INBOX "$T/sent.eml" &&
		imap_append "$SRC" alice pass INBOX "$T/held.eml" &&
		"$LEDGER_PUT" "$T/state" bob "$T/sent.eml" >>"$T/ledger.hex" &&
		"$LEDGER_PUT" -p "$T/state" bob "$T/held.eml" >>"$T/ledger.hex"
}
check "meanwhile: two relayed messages on the source, one delivered and one pending in the ledger" late
touch "$T/proxy.log.open"
wait $syncd_pid
rc=$?

got=$("$LIB_PYTHON" -c 'import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(t["copied"], t["duplicates"])' "$T/pass1.json" 2>&1)
if [ "$got" = "10 2" ]; then
	ok "the pass copied the history and counted both relayed messages as duplicates (exit $rc)"
else
	not_ok "the pass copied the history and counted both relayed messages as duplicates" \
		"exit $rc, (copied, duplicates) = $got" "$(grep -i ledger "$T/log/syncd1.log")"
fi
if grep -q 'skipped: the relay already delivered it (ledger)' "$T/log/syncd1.log" &&
	grep -q 'skipped for this pass: the relay still holds it (ledger)' "$T/log/syncd1.log"; then
	ok "the log names the ledger for both"
else
	not_ok "the log names the ledger for both" "$(grep -i ledger "$T/log/syncd1.log")"
fi
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst1.digest"
if [ "$(wc -l <"$T/dst1.digest")" -eq 10 ] && ! grep -q 'relayed-' "$T/dst1.digest"; then
	ok "the destination holds the history, neither relayed message"
else
	not_ok "the destination holds the history, neither relayed message" \
		"$(wc -l <"$T/dst1.digest") messages" "$(grep 'relayed-' "$T/dst1.digest")"
fi

# The relay delivers the held one and settles its entry; the next pass
# finds both delivered and copies nothing.
check "the relay settles the pending entry" \
	"$LEDGER_PUT" "$T/state" bob "$T/held.eml"
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json \
	>"$T/pass2.json" 2>"$T/log/syncd2.log"
rc=$?
got=$("$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(j["totals"]["copied"], j["complete"])' "$T/pass2.json" 2>&1)
if [ $rc -eq 0 ] && [ "$got" = "0 True" ] &&
	! "$LIB_PYTHON" "$DIGEST" "$DST" bob pass | grep -q 'relayed-'; then
	ok "the next pass is complete and copies nothing"
else
	not_ok "the next pass is complete and copies nothing" "exit $rc, (copied, complete) = $got" \
		"$(tail -n 5 "$T/log/syncd2.log")"
fi

done_testing
