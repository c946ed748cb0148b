#!/bin/bash
# test_syncd_hostile.sh - a source server whose answers are wrong in the
# ways real servers are seen to be (tests/integration/data/imap_mangle.py
# in front of a real Dovecot), and what ferry-syncd makes of it:
#
#   badlist   the LIST entry of folder "Broken" has no delimiter: only
#             that folder fails (not copied, named in the report and the
#             log, the pass exits 1); INBOX and Work are copied
#   size      in INBOX, UID 3's RFC822.SIZE is one byte more than its
#             body: copied as received, a warning naming folder and UID,
#             a note and size_mismatch 1 in the report
#   dupuid    in Work, the FETCH response of UID 2 comes twice: copied
#             once, the log and report say the server sent it twice,
#             nothing is said to have vanished
#   interleave  a delta with a new message and a flag changed in INBOX:
#             the flag look's answers arrive while the new-message FETCH
#             is still open (its OK held back); the new message is copied
#             once and the flag reaches the destination
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

DIGEST=$TEST_DATA/mailbox_digest.py
MANGLE=$TEST_DATA/imap_mangle.py

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# msg FILE SUBJECT - a small test message with a unique id
msg() {
	{
		printf 'From: Test <test@example.com>\r\nTo: x@example.org\r\n'
		printf 'Subject: %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n' "$2"
		printf 'Message-ID: <%s.%s@hostile.test>\r\n\r\n' "${2// /-}" "$RANDOM"
		printf 'Hello, this is %s.\r\n' "$2"
	} >"$1"
}
fill() {
	local f i
	for f in INBOX Work Broken; do
		[ "$f" = INBOX ] || imap_create "$SRC" alice pass "$f" || return 1
		for i in 1 2 3 4; do
			msg "$T/m.eml" "$f $i" &&
				imap_append "$SRC" alice pass "$f" "$T/m.eml" '\Seen' || return 1
		done
	done
}
check "source: INBOX, Work and Broken with 4 messages each" fill

# py EXPR FILE - a Python expression over the JSON report j; folder(NAME)
# is that folder's row
py() {
	"$LIB_PYTHON" -c 'import json, sys
try:
    j = json.load(open(sys.argv[2]))
    def folder(n):
        return [f for a in j["accounts"] for f in a["folders"] if f["source"] == n][0]
    r = eval(sys.argv[1])
except Exception as e:
    print("PYERR: %s: %s" % (type(e).__name__, e))
    sys.exit(1)
print(r if not isinstance(r, bool) else ("yes" if r else "no"))' "$1" "$2"
}

spawn mangle "$LIB_PYTHON" "$MANGLE" "$T/mangle.port" "$SRC" "$T/mangle.log" \
	badlist=Broken size=INBOX:3 dupuid=Work:2 interleave=INBOX
for ((i = 0; i < 100; i++)); do
	[ -s "$T/mangle.port" ] && break
	sleep 0.05
done
MPORT=$(cat "$T/mangle.port") && check "the mangling proxy listens" wait_port "$MPORT"

printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
write_syncd_conf "$T/syncd.conf" "$MPORT" "$DST"

timeout -s KILL 60 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json \
	>"$T/pass1.json" 2>"$T/log/syncd-pass1.log"
rc=$?
LOG=$T/log/syncd-pass1.log
for r in badlist size dupuid; do
	check "the proxy applied its $r rule" grep -q "^$r " "$T/mangle.log"
done

# --- one bad LIST entry ---------------------------------------------------------
got=$(py '(j["complete"], folder("Broken")["not_copied"], folder("Broken")["complete"], folder("INBOX")["complete"], folder("Work")["complete"])' "$T/pass1.json" 2>&1)
if [ $rc -eq 1 ] && [ "$got" = "(False, True, False, True, True)" ]; then
	ok "a bad LIST entry fails only its folder: exit 1, Broken not copied, INBOX and Work complete"
else
	not_ok "a bad LIST entry fails only its folder" "exit $rc" "got: $got" \
		"$(tail -n 8 "$LOG")"
fi
got=$(py 'folder("Broken")["error"]' "$T/pass1.json" 2>&1)
if grep -q 'LIST entry did not parse' <<<"$got" &&
	grep -q 'folder "Broken" not copied: its LIST entry did not parse' "$LOG"; then
	ok "the report and the log say why Broken is not copied: $got"
else
	not_ok "the report and the log say why Broken is not copied" "report: $got" \
		"$(grep -i broken "$LOG" | head -n 4)"
fi

"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass | grep -v -e '^Broken' | cut -f1-3 >"$T/want"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass | cut -f1-3 >"$T/have"
if [ "$(wc -l <"$T/want")" -eq 8 ] && cmp -s "$T/want" "$T/have"; then
	ok "INBOX and Work are on the destination, each message once"
else
	not_ok "INBOX and Work are on the destination, each message once" \
		"$(diff "$T/want" "$T/have" | head -n 8)"
fi

# --- RFC822.SIZE not the size of the body ---------------------------------------
got=$(py '(folder("INBOX")["size_mismatch"], [(p["kind"], p["uid"]) for p in folder("INBOX")["problems"] if "RFC822.SIZE" in p["reason"]], folder("INBOX")["copied"])' "$T/pass1.json" 2>&1)
if [ "$got" = "(1, [('note', 3)], 4)" ] &&
	grep -q 'INBOX: uid 3: RFC822.SIZE is [0-9]* but the body received is [0-9]* bytes: copied as received' "$LOG"; then
	ok "RFC822.SIZE off by one: copied as received, flagged in the log and the report"
else
	not_ok "RFC822.SIZE off by one: flagged in the log and the report" "got: $got" \
		"$(grep -i 'RFC822' "$LOG" | head -n 3)"
fi

# --- a UID twice in one FETCH response --------------------------------------------
got=$(py '(folder("Work")["copied"], folder("Work")["failed"], [(p["kind"], p["uid"]) for p in folder("Work")["problems"] if "more than once" in p["reason"]])' "$T/pass1.json" 2>&1)
if [ "$got" = "(4, 0, [('note', 2)])" ] &&
	grep -q 'Work: the source server sent 1 UID more than once in one FETCH response (UID 2 first)' "$LOG" &&
	! grep -q 'vanished' "$LOG"; then
	ok "a UID sent twice: copied once, the log and report say so, nothing 'vanished'"
else
	not_ok "a UID sent twice: copied once, with a true reason" "got: $got" \
		"$(grep -i -e 'twice' -e 'more than once' -e vanished "$LOG" | head -n 4)"
fi

# --- a delta whose two FETCHes are answered interleaved ---------------------------
change() {
	msg "$T/m.eml" "INBOX 5" &&
		imap_append "$SRC" alice pass INBOX "$T/m.eml" '\Seen' &&
		doveadm_cmd src flags add -u alice '\Flagged' mailbox INBOX uid 1
}
check "source: a new message in INBOX and UID 1 flagged" change
timeout -s KILL 60 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json \
	>"$T/pass2.json" 2>"$T/log/syncd-pass2.log"
check "the proxy applied its interleave rule" grep -q "^interleave INBOX" "$T/mangle.log"
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass INBOX Work | cut -f1-4 >"$T/want2"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass INBOX Work | cut -f1-4 >"$T/have2"
if [ "$(wc -l <"$T/want2")" -eq 9 ] && cmp -s "$T/want2" "$T/have2" &&
	grep -q 'Flagged' "$T/have2"; then
	ok "interleaved answers: the new message once, the flag on the destination"
else
	not_ok "interleaved answers: the new message once, the flag on the destination" \
		"$(diff "$T/want2" "$T/have2" | head -n 8)"
fi
done_testing
