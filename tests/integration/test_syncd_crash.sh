#!/bin/bash
# test_syncd_crash.sh - kill -9 of ferry-syncd in the middle of a full
# pass, three times at different points, then a restart: the destination
# ends with every source message exactly once (issue 5, "Done when").
#
# The source (Dovecot "src", user alice) holds 900 generated messages in
# three folders (INBOX, a nested one, a non-ASCII one).  ferry-syncd runs
# with max_messages_per_second so a pass lasts a few seconds; the test
# watches the destination's maildir and kills the process group with
# SIGKILL once about 20% (first run), 55% (second run, 0.1 s later) and
# 80% (third run, 0.25 s later) of the messages have arrived.  A fourth
# run must finish the pass; then every folder of the destination must
# hold exactly the source's messages (Message-ID and SHA-256 of the whole
# message; flags and INTERNALDATE too), no message twice, and a fifth
# run must copy nothing.  Last, a 20 MB message alone in a new folder
# must be copied intact with a peak RSS under 50 MB.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py
TOTAL=900

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# 900 messages (about 30 MB) in three folders, numbered apart so every
# Message-ID is unique.
M=$T/dovecot/src/mail/alice/Maildir
gen() {
	"$LIB_PYTHON" "$GEN" -q --seed 7 --maildir "$M" "$@"
}
fill_source() {
	gen --count 400 --start 0 --folder INBOX &&
		gen --count 300 --start 1000 --folder Archive/2020 &&
		gen --count 200 --start 2000 --folder "Projects/Réunions" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	doveadm_cmd src force-resync -u alice '*'
}
check "generate $TOTAL messages in three folders" fill_source
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass >"$T/src.digest"
check_output "the source holds $TOTAL messages" "$TOTAL" \
	awk 'END { print NR }' "$T/src.digest"
# Log in once so Dovecot creates the destination's maildir.
imap_cmd "$DST" bob pass NOOP >/dev/null

cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/state
log = stderr
log_level = info

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
tls_verify = no
max_messages_per_second = 150
EOF
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

DM=$T/dovecot/dst/mail/bob/Maildir
# dst_files - messages the destination has written so far (files in
# cur/ and new/ of every folder; Dovecot renames them in after the
# APPEND's data is on disk).
dst_files() {
	find "$DM" -type f \( -path '*/cur/*' -o -path '*/new/*' \) 2>/dev/null |
		wc -l
}

# kill_at N RUN [DELAY] - start ferry-syncd --once, SIGKILL its process
# group DELAY seconds (default 0) after the destination holds N messages
# (Dovecot commits a MULTIAPPEND's messages together, so a delay lands
# the kill inside the next batch rather than just after one); KILLED_AT
# is the count seen then, "" if the pass ended (or 30 s passed) before.
kill_at() {
	local n=$1 run=$2 delay=${3:-0} i c pid
	spawn "syncd-$run" "$FERRY_SYNCD" -c "$T/syncd.conf" --once
	pid=$SPAWN_PID
	KILLED_AT=
	for ((i = 0; i < 3000; i++)); do
		c=$(dst_files)
		if [ "$c" -ge "$n" ]; then
			[ "$delay" = 0 ] || sleep "$delay"
			_lib_alive "$pid" || break
			kill -KILL -- "-$pid" 2>/dev/null
			c=$(dst_files)
			KILLED_AT=$c
			break
		fi
		_lib_alive "$pid" || break
		sleep 0.01
	done
	wait "$pid" 2>/dev/null
	stop_pid "$pid"
	[ -n "$KILLED_AT" ]
}

for spec in 20:0 55:0.1 80:0.25; do
	point=${spec%:*}
	want=$((TOTAL * point / 100))
	if kill_at "$want" "kill$point" "${spec#*:}"; then
		after=$(dst_files)
		if [ "$after" -lt "$TOTAL" ]; then
			ok "kill -9 at about ${point}%: $KILLED_AT messages on the destination, $after after the kill"
		else
			not_ok "kill -9 at about ${point}% hits a pass in progress" \
				"the destination already held all $after messages"
		fi
	else
		not_ok "kill -9 at about ${point}% hits a pass in progress" \
			"ferry-syncd ended before the destination held $want messages ($(dst_files))" \
			"$(tail -n 5 "$T/log/syncd-kill$point.log")"
	fi
done

# The run after the crashes finishes the pass.
"$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/final.json" 2>"$T/log/syncd-final.log"
rc=$?
if [ $rc -eq 0 ]; then
	ok "the restarted pass completes (exit 0)"
else
	not_ok "the restarted pass completes (exit 0)" "exit $rc" \
		"$(tail -n 15 "$T/log/syncd-final.log")"
fi

"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst.digest"
cut -f1-3 "$T/src.digest" >"$T/src.ids"
cut -f1-3 "$T/dst.digest" >"$T/dst.ids"
dups=$(sort "$T/dst.ids" | uniq -d | wc -l)
if [ "$dups" -eq 0 ]; then
	ok "no message is on the destination twice"
else
	not_ok "no message is on the destination twice" \
		"$dups duplicated, e.g.:" "$(sort "$T/dst.ids" | uniq -d | head -n 3)"
fi
if cmp -s "$T/src.ids" "$T/dst.ids"; then
	ok "every folder holds exactly the source's messages (Message-ID, SHA-256)"
else
	not_ok "every folder holds exactly the source's messages (Message-ID, SHA-256)" \
		"source $(wc -l <"$T/src.ids"), destination $(wc -l <"$T/dst.ids")" \
		"$(diff "$T/src.ids" "$T/dst.ids" | head -n 6)"
fi
if cmp -s "$T/src.digest" "$T/dst.digest"; then
	ok "flags and INTERNALDATEs match too"
else
	not_ok "flags and INTERNALDATEs match too" \
		"$(diff "$T/src.digest" "$T/dst.digest" | head -n 6)"
fi

# A pass after that finds nothing to do.
"$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/again.json" 2>"$T/log/syncd-again.log"
rc=$?
copied=$("$LIB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["copied"])' \
	"$T/again.json" 2>/dev/null)
if [ $rc -eq 0 ] && [ "$copied" = 0 ]; then
	ok "one more pass copies nothing"
else
	not_ok "one more pass copies nothing" "exit $rc, copied '$copied'"
fi
check_output "the destination still holds $TOTAL messages" "$TOTAL" dst_files

# Then a big message alone in a new folder (a batch of one: a single
# APPEND, the body streamed under flow control): copied intact, and the
# memory bound of DESIGN.md §1 holds.
big_source() {
	gen --count 1 --start 5000 --folder Big --scale 0.01 --big 20000000 &&
		{ [ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"; }
}
check "a 20 MB message in a new source folder" big_source
SECONDS=0
/usr/bin/time -f '%M' -o "$T/big.rss" timeout -s KILL 60 \
	"$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/big.out" 2>"$T/log/syncd-big.log"
rc=$?
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass Big | cut -f1-3 >"$T/src.big"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass Big | cut -f1-3 >"$T/dst.big"
if [ $rc -eq 0 ] && [ "$(wc -l <"$T/src.big")" -eq 2 ] && cmp -s "$T/src.big" "$T/dst.big"; then
	ok "the 20 MB message is copied intact (${SECONDS}s)"
else
	not_ok "the 20 MB message is copied intact" "exit $rc after ${SECONDS}s" \
		"$(diff "$T/src.big" "$T/dst.big")" "$(tail -n 5 "$T/log/syncd-big.log")"
fi
rss=$(tail -n 1 "$T/big.rss")
if [ $rc -eq 0 ] && [ -n "$rss" ] && [ "$rss" -lt 51200 ]; then
	ok "peak RSS while copying it: $((rss / 1024)) MB (< 50 MB)"
else
	not_ok "peak RSS while copying it stays under 50 MB" "exit $rc, peak ${rss:-?} kB"
fi

done_testing
