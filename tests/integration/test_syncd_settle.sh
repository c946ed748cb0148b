#!/bin/bash
# test_syncd_settle.sh - a folder's last faithful-copy check is answered
# while the next folder is being selected.  The check of a folder's last
# batch has no batch after it to overlap with; its answer is collected
# once the next folder's EXAMINE and SELECT are out, and only then is the
# folder's state recorded.  A proxy in front of the destination holds the
# answer to every check (UID FETCH ... BODY.PEEK[HEADER]) 300 ms and
# notes each SELECT the client sends before it has a check's answer: with
# three folders, the SELECTs of the second and third go out before the
# check of the folder before them is answered.  Every message arrives
# once, byte for byte, the pass is complete, and the next pass finds
# nothing to copy.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

fill() {
	local i=0 f
	for f in Alpha Beta Gamma; do
		"$LIB_PYTHON" "$GEN" -q --seed 4 --start $((i * 10)) --count 5 \
			--scale 0.01 --folder "$f" \
			--maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
		i=$((i + 1))
	done
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
check "source: 5 messages in each of 3 folders" fill

start_hold_proxy "$DST" "hold:check=UID FETCH .*BODY\\.PEEK\\[HEADER\\]" \
	"note:select=SELECT (.*)"

write_syncd_conf "$T/syncd.conf" "$SRC" "$PROXY"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass1.out" 2>"$T/log/syncd.log"
check_output "the pass exits 0" 0 echo $?
checks=$(grep -c '^check ' "$T/proxy.log")
if [ "$checks" -ge 3 ]; then
	ok "every folder's copies were checked ($checks checks)"
else
	not_ok "every folder's copies were checked" "$(cat "$T/proxy.log")"
fi
# a SELECT between a check and the release of its answer
during=$(awk '$1 == "check" { open[$2] = 1 }
	$1 == "release" { delete open[$2] }
	$1 == "select" { for (t in open) { n++; break } }
	END { print n + 0 }' "$T/proxy.log")
if [ "$during" -ge 2 ]; then
	ok "the next folder's SELECT went out before the check of the one before was answered ($during times)"
else
	not_ok "the next folder's SELECT went out before the check of the one before was answered" \
		"$(cat "$T/proxy.log")"
fi
if grep -q "all 15 messages of the source are on the destination" "$T/pass1.out" "$T/log/syncd.log"; then
	ok "the pass is complete"
else
	not_ok "the pass is complete" "$(tail -3 "$T/log/syncd.log")"
fi
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass | cut -f1,2,3 | sort >"$T/src.d"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass | cut -f1,2,3 | sort >"$T/dst.d"
if [ "$(wc -l <"$T/src.d")" -eq 15 ] && cmp -s "$T/src.d" "$T/dst.d"; then
	ok "every message on the destination once, byte for byte"
else
	not_ok "every message on the destination once, byte for byte" \
		"$(diff "$T/src.d" "$T/dst.d" | head -5)"
fi
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass2.out" 2>"$T/log/syncd2.log"
check_output "the second pass exits 0" 0 echo $?
if ! grep -q "copied=[1-9]" "$T/log/syncd2.log"; then
	ok "the second pass copies nothing"
else
	not_ok "the second pass copies nothing" "$(grep copied= "$T/log/syncd2.log")"
fi

done_testing
