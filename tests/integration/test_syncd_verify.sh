#!/bin/bash
# test_syncd_verify.sh - ferry-syncd --verify (syncd/verify*.c) against
# two real Dovecot instances.  After a --once copy: verify says complete
# (exit 0) and lists the message over the destination's APPENDLIMIT and
# the excluded folder as left by policy, not as missing; it writes
# nothing to either server (flags, counts and mailbox state unchanged)
# and one verification record in the store.  Then, by hand on the
# destination: a message expunged is listed missing with its folder,
# date, from, subject, size and source UID (exit 1); a flag changed is
# "flags different"; a message APPENDed a second time is extra; a body
# edited on disk with its size, Message-ID and date kept is found by
# --deep only; --json parses; a message deleted on the source after the
# copy is kept by policy (the state map says so), not extra.  Bad input: an unreachable destination is
# a clear error, exit 1, nothing written; an unknown --account and
# --deep without --verify exit 2.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot doveadm "$LIB_PYTHON"
export LC_ALL=C

[ -x "$FERRY_SYNCD" ] || {
	echo "Bail out! $FERRY_SYNCD not built"
	exit 1
}

GEN=$top_srcdir/bench/gen_mailbox.py

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst DOVECOT_EXTRA='imap_capability = +APPENDLIMIT=102400' \
	check "destination Dovecot starts (APPENDLIMIT=102400)" \
	start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# msg FILE SUBJECT [BODYBYTES] [NOMID] - a small message with a unique id
msg() {
	{
		printf 'From: Test <test@example.com>\r\nTo: x@example.org\r\n'
		printf 'Subject: %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n' "$2"
		[ -n "${4:-}" ] ||
			printf 'Message-ID: <%s.%s@verify.test>\r\n' "${2// /-}" "$RANDOM"
		printf '\r\nHello, this is %s.\r\n' "$2"
		if [ -n "${3:-}" ]; then
			head -c "$3" /dev/urandom | base64 -w 76 | sed 's/$/\r/'
		fi
	} >"$1"
}

fill() {
	"$LIB_PYTHON" "$GEN" -q --seed 7 --count 30 --scale 0.01 --folder INBOX \
		--maildir "$T/dovecot/src/mail/alice/Maildir" &&
		"$LIB_PYTHON" "$GEN" -q --seed 7 --start 100 --count 15 --scale 0.01 \
			--folder Work --maildir "$T/dovecot/src/mail/alice/Maildir" &&
		"$LIB_PYTHON" "$GEN" -q --seed 7 --start 200 --count 4 --scale 0.01 \
			--folder Spam --maildir "$T/dovecot/src/mail/alice/Maildir" ||
		return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	msg "$T/big.eml" "big over APPENDLIMIT" 150000
	msg "$T/nomid.eml" "no message id" "" nomid
	msg "$T/edit.eml" "to be edited on disk" 2000
	imap_append "$SRC" alice pass INBOX "$T/big.eml" '\Seen' &&
		imap_append "$SRC" alice pass Work "$T/nomid.eml" '\Seen' &&
		imap_append "$SRC" alice pass Work "$T/edit.eml" '\Seen'
}
check "source: 49 generated messages in 3 folders, one of 200 KB, one without Message-ID" \
	fill

printf '[global]\nstate_dir = %s\nlog = stderr\nlog_level = info\n\n' "$T/state" \
	>"$T/syncd.conf"
printf '[syncd]\nsource = imap://127.0.0.1:%s?tls=none\n' "$SRC" >>"$T/syncd.conf"
printf 'destination = imap://127.0.0.1:%s?tls=none\n' "$DST" >>"$T/syncd.conf"
printf 'accounts = %s\ntls_verify = no\nexclude = Spam\n' "$T/accounts" \
	>>"$T/syncd.conf"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
mkdir -p "$T/log"

# verify NAME [ARGS...] - ferry-syncd --verify; stdout in $T/NAME.out,
# stderr in $T/log/verify-NAME.log, exit code in VRC
verify() {
	local name=$1
	shift
	timeout -s KILL 120 "$FERRY_SYNCD" -c "${VCONF:-$T/syncd.conf}" --verify \
		"$@" >"$T/$name.out" 2>"$T/log/verify-$name.log"
	VRC=$?
}

# snapshot - both servers' state: every folder's UIDs and flags and the
# index's counters (messages, uidnext, highestmodseq, unseen)
snapshot() {
	local f
	for f in INBOX Work Spam; do
		echo "== src $f"
		imap_flags "$SRC" alice pass "$f"
		doveadm_cmd src mailbox status -u alice \
			'messages uidnext highestmodseq unseen' "$f"
	done
	for f in INBOX Work; do
		echo "== dst $f"
		imap_flags "$DST" bob pass "$f"
		doveadm_cmd dst mailbox status -u bob \
			'messages uidnext highestmodseq unseen' "$f"
	done
}

# has_record STATE_DIR - a syncd.verify.alice record in that store
has_record() {
	[ -e "$1/db/data.mdb" ] && grep -aq 'syncd\.verify\.alice' "$1/db/data.mdb"
}

# the pass ends "incomplete" (exit 1): the big message is skipped by policy
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once \
	>"$T/log/once.log" 2>&1
if grep -q '47 copied' "$T/log/once.log"; then
	ok "the copy (--once): 47 messages copied, 1 skipped by policy"
else
	not_ok "the copy (--once): 47 messages copied, 1 skipped by policy" \
		"$(tail -n 20 "$T/log/once.log")"
fi

# --- complete ---------------------------------------------------------------------
snapshot >"$T/snap.before"
verify complete
if [ "$VRC" -eq 0 ] && grep -q 'verdict alice: COMPLETE' "$T/complete.out" &&
	grep -q '^verdict: COMPLETE' "$T/complete.out"; then
	ok "after the copy: verify exit 0, verdict COMPLETE"
else
	not_ok "after the copy: verify exit 0, verdict COMPLETE" "exit $VRC" \
		"$(cat "$T/complete.out")" "$(tail -n 20 "$T/log/verify-complete.log")"
fi
if sed -n '/left behind by policy/,/verdict/p' "$T/complete.out" |
	grep -q 'INBOX uid [0-9]*: .*big over APPENDLIMIT.*APPENDLIMIT (102400 bytes)' &&
	sed -n '/left behind by policy/,/verdict/p' "$T/complete.out" |
	grep -q 'Spam: folder not copied (excluded): 4 messages' &&
	! grep -q 'missing on the destination' "$T/complete.out"; then
	ok "the message over APPENDLIMIT and the excluded folder are listed as policy, not missing"
else
	not_ok "the message over APPENDLIMIT and the excluded folder are listed as policy, not missing" \
		"$(cat "$T/complete.out")"
fi
snapshot >"$T/snap.after"
if cmp -s "$T/snap.before" "$T/snap.after"; then
	ok "verify changed nothing on either server (UIDs, flags, modseq, counts)"
else
	not_ok "verify changed nothing on either server (UIDs, flags, modseq, counts)" \
		"$(diff "$T/snap.before" "$T/snap.after")"
fi
if has_record "$T/state"; then
	ok "a verification record syncd.verify.alice is in the store"
else
	not_ok "a verification record syncd.verify.alice is in the store"
fi

# --- by hand on the destination ---------------------------------------------------
# uid_of PORT USER FOLDER SUBJECT - the UID of the message with SUBJECT
uid_of() {
	imap_cmd "$1" "$2" pass "EXAMINE $3" \
		"UID SEARCH HEADER Subject \"$4\"" | tr -d '\r' |
		sed -n 's/^\* SEARCH \([0-9]*\).*/\1/p'
}
subj() { # the Subject of source INBOX uid N
	imap_cmd "$SRC" alice pass "EXAMINE INBOX" \
		"UID FETCH $1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])" | tr -d '\r' |
		sed -n 's/^Subject: //p' | head -n 1
}
S5=$(subj 5)
D5=$(uid_of "$DST" bob INBOX "$S5")
D7=$(uid_of "$DST" bob INBOX "$(subj 7)")
hand() {
	[ -n "$D5" ] && [ -n "$D7" ] &&
		imap_cmd "$DST" bob pass "SELECT INBOX" \
			"UID STORE $D5 +FLAGS.SILENT (\\Deleted)" "UID EXPUNGE $D5" \
			"UID STORE $D7 +FLAGS.SILENT (\\Flagged)" >/dev/null &&
		imap_fetch "$SRC" alice pass Work 3 >"$T/dup.eml" &&
		imap_append "$DST" bob pass Work "$T/dup.eml"
}
check "on the destination: INBOX uid $D5 expunged, uid $D7 flagged, Work's third message APPENDed again" \
	hand
snapshot >"$T/snap.before"
verify broken
V=$T/broken.out
if [ "$VRC" -eq 1 ] &&
	grep -q 'verdict alice: INCOMPLETE.*1 missing, 1 extra, 1 different' "$V" &&
	grep -q '^verdict: INCOMPLETE' "$V"; then
	ok "after the changes: exit 1, verdict INCOMPLETE (1 missing, 1 extra, 1 different)"
else
	not_ok "after the changes: exit 1, verdict INCOMPLETE (1 missing, 1 extra, 1 different)" \
		"exit $VRC" "$(cat "$V")"
fi
if grep -A1 'missing on the destination' "$V" | grep -F "INBOX uid 5:" |
	grep -F "subject \"$S5\"" |
	grep -q 'date "[^"-][^"]*" from "[^"-][^"]*" .*size .*bytes'; then
	ok "the expunged message is listed missing: folder, date, from, subject, size, source UID"
else
	not_ok "the expunged message is listed missing: folder, date, from, subject, size, source UID" \
		"subject $S5" "$(cat "$V")"
fi
if grep -A1 'different on the destination' "$V" |
	grep -q "INBOX uid 7 (destination uid $D7):.*flags different: .*Flagged"; then
	ok "the flag changed is listed as flags different"
else
	not_ok "the flag changed is listed as flags different" "$(cat "$V")"
fi
if grep -A1 'extra on the destination' "$V" |
	grep -q 'Work uid [0-9]*: .*another copy of source Work uid 3$'; then
	ok "the message APPENDed twice is listed extra on the destination"
else
	not_ok "the message APPENDed twice is listed extra on the destination" "$(cat "$V")"
fi
snapshot >"$T/snap.after"
if cmp -s "$T/snap.before" "$T/snap.after"; then
	ok "verify with differences changed nothing on either server"
else
	not_ok "verify with differences changed nothing on either server" \
		"$(diff "$T/snap.before" "$T/snap.after")"
fi

# --- --json -------------------------------------------------------------------------
verify json --json
if [ "$VRC" -eq 1 ] && "$LIB_PYTHON" - "$T/json.out" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
a = j["accounts"][0]
kinds = sorted(i["kind"] for i in a["issues"])
assert j["verdict"] == "incomplete", j["verdict"]
assert a["verdict"] == "incomplete" and a["account"] == "alice"
assert a["missing"] == 1 and a["extra"] == 1 and a["different"] == 1, a
assert a["policy"] == 5, a["policy"]
assert kinds == ["different", "extra", "missing", "policy", "policy"], kinds
m = [i for i in a["issues"] if i["kind"] == "missing"][0]
assert m["folder"] == "INBOX" and m["uid"] == 5 and m["size"] > 0, m
assert m["subject"] and m["from"] and m["date"], m
inbox = [f for f in a["folders"] if f["folder"] == "INBOX"][0]
assert inbox["src_messages"] == 31 and inbox["dst_messages"] == 29, inbox
assert j["total"]["src_messages"] == a["src_messages"]
PYEOF
then
	ok "--json: parses; verdict, counts and the missing message's fields"
else
	not_ok "--json: parses; verdict, counts and the missing message's fields" \
		"exit $VRC" "$(head -c 3000 "$T/json.out")"
fi

# --- --deep: a body changed on disk, size, Message-ID and date kept ---------------
edit_body() {
	local f
	f=$(grep -l 'to be edited on disk' "$T"/dovecot/dst/mail/bob/Maildir/.Work/cur/* \
		"$T"/dovecot/dst/mail/bob/Maildir/.Work/new/* 2>/dev/null | head -n 1)
	[ -n "$f" ] || return 1
	sed -i 's/Hello, this is/Jello, this is/' "$f" &&
		doveadm_cmd dst force-resync -u bob Work
}
check "on the destination: a body edited on disk (same size)" edit_body
verify shallow
if [ "$VRC" -eq 1 ] && ! grep -q 'body differs' "$T/shallow.out"; then
	ok "without --deep the edited body is not read (Message-ID and size match)"
else
	not_ok "without --deep the edited body is not read (Message-ID and size match)" \
		"$(cat "$T/shallow.out")"
fi
verify deep --deep
if [ "$VRC" -eq 1 ] && grep -A3 'different on the destination' "$T/deep.out" |
	grep -q 'Work uid [0-9]* (destination uid [0-9]*):.*to be edited on disk.*body differs' &&
	grep -q 'verdict alice: INCOMPLETE.*2 different' "$T/deep.out"; then
	ok "--deep finds the body that changed with its size, Message-ID and date kept"
else
	not_ok "--deep finds the body that changed with its size, Message-ID and date kept" \
		"exit $VRC" "$(cat "$T/deep.out")"
fi

# --- deleted on the source after the copy: kept on the destination ------------------
check "on the source: Work uid 5 expunged" imap_cmd "$SRC" alice pass "SELECT Work" \
	"UID STORE 5 +FLAGS.SILENT (\\Deleted)" "UID EXPUNGE 5"
verify gone
if [ "$VRC" -eq 1 ] && sed -n '/left behind by policy/,/verdict/p' "$T/gone.out" |
	grep -q 'Work uid [0-9]*: .*deleted on the source (Work uid 5) after the copy; kept on the destination' &&
	grep -q 'verdict alice: INCOMPLETE.*1 missing, 1 extra, 1 different, 6 left by policy' "$T/gone.out"; then
	ok "a message deleted on the source after the copy is listed as kept by policy, not extra"
else
	not_ok "a message deleted on the source after the copy is listed as kept by policy, not extra" \
		"exit $VRC" "$(cat "$T/gone.out")"
fi

# --- bad input --------------------------------------------------------------------------
DEAD=$(free_port)
sed -e "s/127.0.0.1:$DST/127.0.0.1:$DEAD/" \
	-e "s|state_dir = .*|state_dir = $T/state-dead|" "$T/syncd.conf" >"$T/dead.conf"
VCONF=$T/dead.conf verify dead
if [ "$VRC" -eq 1 ] &&
	grep -q "NOT VERIFIED: destination bob@127.0.0.1:$DEAD" "$T/dead.out" &&
	grep -q "not verified" "$T/log/verify-dead.log" && [ ! -e "$T/state-dead" ]; then
	ok "unreachable destination: a clear error, exit 1, nothing written (no state_dir)"
else
	not_ok "unreachable destination: a clear error, exit 1, nothing written (no state_dir)" \
		"exit $VRC" "$(cat "$T/dead.out")" "$(cat "$T/log/verify-dead.log")"
fi
verify unknown --account nobody
if [ "$VRC" -eq 2 ] && grep -q 'no account nobody' "$T/log/verify-unknown.log"; then
	ok "--verify --account with an unknown account: exit 2"
else
	not_ok "--verify --account with an unknown account: exit 2" "exit $VRC" \
		"$(cat "$T/log/verify-unknown.log")"
fi
"$FERRY_SYNCD" -c "$T/syncd.conf" --deep >"$T/usage.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q 'usage:' "$T/usage.out"; then
	ok "--deep without --verify: usage, exit 2"
else
	not_ok "--deep without --verify: usage, exit 2" "exit $rc" "$(cat "$T/usage.out")"
fi

done_testing
