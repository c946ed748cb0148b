#!/bin/bash
# test_syncd_crash_tail.sh - kill -9 of ferry-syncd before a folder's
# last batch, whose intents are committed with the batch before it
# (syncd/sync_copy.c, copy_batch): the tail's APPEND waits for no commit
# of its own, so a crash between that commit and the tail's APPEND must
# leave intents the restart resolves, and end with every message on the
# destination exactly once.
#
# One folder of 60 messages at max_messages_per_second = 30: a first
# batch of 30, then 18, then the tail of 12 (its intents committed with
# the 18), with the rate's wait (about 0.6 s) between the 18 and the
# tail.  The kill lands in that wait, when the destination holds 48; the
# restart must find the tail's intents (uid 49 to 60 "not appended before
# the interruption"), copy them once, and a rerun copies nothing.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py
TOTAL=60

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

fill_source() {
	"$LIB_PYTHON" "$GEN" -q --seed 11 --maildir \
		"$T/dovecot/src/mail/alice/Maildir" --count "$TOTAL" --folder INBOX ||
		return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	doveadm_cmd src force-resync -u alice '*'
}
check "generate $TOTAL messages in INBOX" fill_source
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass >"$T/src.digest"
check_output "the source holds $TOTAL messages" "$TOTAL" \
	awk 'END { print NR }' "$T/src.digest"
imap_cmd "$DST" bob pass NOOP >/dev/null

write_syncd_conf "$T/syncd.conf" "$SRC" "$DST" "http =" \
	"max_messages_per_second = 30"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

DM=$T/dovecot/dst/mail/bob/Maildir
dst_files() { syncd_dst_files "$DM"; }

check "kill -9 before the tail's APPEND (the destination holds 48)" \
	syncd_kill_at "$DM" 48 before
diag "killed with $KILLED_AT on the destination"
check "not all copied yet" test "$(dst_files)" -lt "$TOTAL"

"$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/log/syncd-final.log" 2>&1
check "the restarted pass completes (exit 0)" test $? -eq 0
check_output "the tail's 12 intents were committed before the kill" 12 \
	sh -c "grep -E 'INBOX: uid (49|5[0-9]|60) was not appended before the interruption' \
	'$T/log/syncd-final.log' | wc -l"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst.digest"
cut -f1-3 "$T/src.digest" >"$T/src.ids"
cut -f1-3 "$T/dst.digest" >"$T/dst.ids"
check "no message is on the destination twice" \
	sh -c "test -z \"\$(sort '$T/dst.ids' | uniq -d)\""
check "the destination holds exactly the source's messages" \
	cmp -s "$T/src.ids" "$T/dst.ids"
"$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/rerun.json" \
	2>"$T/log/syncd-rerun.log"
check_output "a rerun copies nothing" 0 "$LIB_PYTHON" -c \
	'import json, sys; print(json.load(open(sys.argv[1]))["totals"]["copied"])' \
	"$T/rerun.json"
check_output "and the destination still holds $TOTAL" "$TOTAL" dst_files
done_testing
