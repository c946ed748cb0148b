#!/bin/bash
# test_syncd_faithful_tail.sh - the faithful-copy check covers a folder's
# last batch too.  The check of each APPEND batch is read while the next
# batch streams; the last batch of a folder has no next batch in that
# folder, so its check must still be settled before the folder's result
# is recorded and the pass moves to the next folder.  Source Dovecot,
# destination a Cyrus with its default munge8bit (8-bit header bytes
# replaced on APPEND, size kept): the only altered message of each folder
# is its last one, and other folders follow.  Every one must be reported
# as altered by the destination (exit 1), the clean messages counted as
# copied, and a second pass must report them again and copy nothing.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

cyrus_why=$(have_cyrus) || skip_all "Cyrus cannot run here: $cyrus_why"

DOVECOT_NAME=dovt check "Dovecot starts" start_dovecot erin:pass || done_testing
CYRUS_NAME=cyrt check "a Cyrus with its default munge8bit starts" \
	start_cyrus frank:pass || done_testing
SRC=$IMAP_PORT_dovt
DST=$IMAP_PORT_cyrt

# Alpha: 40 clean messages and an 8-bit one last (more than one batch, the
# tail its own); Beta: 3 clean and an 8-bit one last; Zeta: 5 clean
seed() {
	"$LIB_PYTHON" - "$SRC" <<'PYEOF'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("erin", "pass")
def msg(folder, i, eight):
    frm = b"J\xc3\xbcrgen M\xc3\xbcller" if eight else b"Jurgen Muller"
    return (b"From: " + frm + b" <jm@example.com>\r\nTo: x@example.org\r\n"
            b"Subject: " + folder.encode() + b" " + str(i).encode() + b"\r\n"
            b"Date: Mon, 4 Mar 2024 10:00:00 +0000\r\n"
            b"Message-ID: <tail." + folder.encode() + b"." + str(i).encode() +
            b"@faithful.test>\r\n\r\nHallo " + str(i).encode() + b".\r\n")
for folder, clean in (("Alpha", 40), ("Beta", 3), ("Zeta", 5)):
    m.create(folder)
    for i in range(1, clean + 1):
        m.append(folder, None, None, msg(folder, i, False))
    if folder != "Zeta":
        m.append(folder, None, None, msg(folder, clean + 1, True))
m.logout()
PYEOF
}
check "the source holds three folders, the last message of two with UTF-8 in From:" seed

cat >"$T/tail.conf" <<EOF
[global]
state_dir = $T/state
log = stderr

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/tail.accounts
tls_verify = no
EOF
printf 'erin pass frank pass\n' >"$T/tail.accounts"
chmod 600 "$T/tail.accounts"
run_pass() {
	timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/tail.conf" --once --json \
		>"$T/$1.json" 2>>"$T/log/syncd-tail.log"
}
# altered JSON - "FOLDER:UID" of each problem that says "altered by the
# destination", sorted
altered() {
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(" ".join(sorted("%s:%d" % (f["source"], p["uid"])
    for a in j["accounts"] for f in a["folders"] for p in f["problems"]
    if "altered by the destination" in (p["reason"] or ""))))' "$1"
}
copied() {	# copied JSON FOLDER - the report's copied count of FOLDER
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(sum(f["copied"] for a in j["accounts"] for f in a["folders"]
    if f["source"] == sys.argv[2]))' "$1" "$2"
}

run_pass full
check_output "the pass exits 1" 1 echo $?
check_output "the last message of Alpha and of Beta are reported as altered" \
	"Alpha:41 Beta:4" altered "$T/full.json"
check_output "Alpha: the 40 clean copies counted as copied" 40 copied "$T/full.json" Alpha
check_output "Beta: the 3 clean copies counted as copied" 3 copied "$T/full.json" Beta
check_output "Zeta, after them: all 5 copied" 5 copied "$T/full.json" Zeta
check_output "Alpha holds 41 messages on the destination" 41 imap_count "$DST" frank pass Alpha
check_output "Zeta holds 5 messages on the destination" 5 imap_count "$DST" frank pass Zeta

run_pass again
check_output "the next pass still exits 1" 1 echo $?
check_output "the next pass still reports both" "Alpha:41 Beta:4" altered "$T/again.json"
check_output "nothing is copied again into Alpha" 41 imap_count "$DST" frank pass Alpha
check_output "nothing is copied again into Beta" 4 imap_count "$DST" frank pass Beta

done_testing
