#!/bin/bash
# test_syncd_prefetch.sh - a delta's two looks at a folder go out in one
# round trip.  When the pass's LIST-STATUS says a folder has new messages
# and changed flags, the FETCH of the new messages (UID n:*) and the
# flag look (UID 1:n-1 CHANGEDSINCE) are queued together behind the
# EXAMINE.  A proxy in front of the source holds the answer to every
# "n:*" FETCH 300 ms and notes each flag look the client sends while one
# is held: the folder with both kinds of change has its flag look sent
# before its new messages were answered.  The flags arrive (both the
# folder with both changes and the ones with only one kind), every new
# message is copied once, byte for byte, and the next pass copies
# nothing.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
MD=$T/dovecot/src/mail/alice/Maildir

# gen FOLDER START COUNT - COUNT generated messages into FOLDER
gen() {
	"$LIB_PYTHON" "$GEN" -q --seed 5 --start "$2" --count "$3" \
		--scale 0.01 --folder "$1" --maildir "$MD" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
fill() { gen Alpha 0 5 && gen Beta 10 5 && gen Gamma 20 5; }
check "source: 5 messages in each of 3 folders" fill

start_hold_proxy "$SRC" "hold:new=UID FETCH \\S+:\\* \\(UID FLAGS INTERNALDATE" \
	"note:flags=UID FETCH \\S+ \\(UID FLAGS\\) \\(CHANGEDSINCE"

write_syncd_conf "$T/syncd.conf" "$PROXY" "$DST" "destination_check_interval = 0"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass1.out" 2>"$T/log/syncd1.log"
check_output "the full pass exits 0" 0 echo $?

# Alpha: new messages and a flag changed; Beta: a flag only; Gamma: new
# messages only
change() {
	gen Alpha 100 3 && gen Gamma 200 2 &&
		doveadm_cmd src force-resync -u alice '*' &&
		doveadm_cmd src flags add -u alice '\Flagged' mailbox Alpha uid 2 &&
		doveadm_cmd src flags add -u alice '\Answered' mailbox Beta uid 1
}
check "source: new mail in Alpha and Gamma, flags changed in Alpha and Beta" change
: >"$T/proxy.log"

timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass2.out" 2>"$T/log/syncd2.log"
check_output "the delta pass exits 0" 0 echo $?
news=$(grep -c '^new ' "$T/proxy.log")
if [ "$news" -eq 2 ]; then
	ok "the delta fetched new messages in the two folders that have them"
else
	not_ok "the delta fetched new messages in the two folders that have them ($news)" \
		"$(cat "$T/proxy.log")"
fi
# a flag look between an n:* FETCH and the release of its answer
during=$(awk '$1 == "new" { open[$2] = 1 }
	$1 == "release" { delete open[$2] }
	$1 == "flags" { for (t in open) { n++; break } }
	END { print n + 0 }' "$T/proxy.log")
if [ "$during" -ge 1 ]; then
	ok "a flag look went out before the new messages were answered ($during)"
else
	not_ok "a flag look went out before the new messages were answered" \
		"$(cat "$T/proxy.log")"
fi
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass | cut -f1-4 | sort >"$T/src.d"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass | cut -f1-4 | sort >"$T/dst.d"
if [ "$(wc -l <"$T/src.d")" -eq 20 ] && cmp -s "$T/src.d" "$T/dst.d"; then
	ok "every message on the destination once, byte for byte, with its flags"
else
	not_ok "every message on the destination once, byte for byte, with its flags" \
		"$(diff "$T/src.d" "$T/dst.d" | head -8)"
fi
for want in 'Alpha.*\\Flagged' 'Beta.*\\Answered'; do
	if grep -q "$want" "$T/dst.d"; then
		ok "destination: $want"
	else
		not_ok "destination: $want" "$(cat "$T/dst.d")"
	fi
done
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass3.out" 2>"$T/log/syncd3.log"
check_output "the third pass exits 0" 0 echo $?
if ! grep -q "copied=[1-9]" "$T/log/syncd3.log"; then
	ok "the third pass copies nothing"
else
	not_ok "the third pass copies nothing" "$(grep copied= "$T/log/syncd3.log")"
fi

done_testing
