#!/bin/bash
# test_syncd_faithful_last.sh - the faithful-copy check covers a folder's
# last batch, also when another folder follows it on the same connection.
#
# The source (Dovecot) holds "Alpha" with 40 plain messages and, as its
# very last message, one with UTF-8 bytes in From: and Subject:, and
# "Beta" with 6 plain messages.  The destination is a Cyrus with its
# default munge8bit, which rewrites 8-bit header bytes and keeps the size.
# One connection pair (connections_per_server = 1) copies both
# folders, so the check of Alpha's last batch is the one whose answer may
# arrive while the next folder is being selected.  Expected: exit 1,
# exactly one "altered by the destination" problem, in Alpha, for the
# source UID of that last message; nothing altered in Beta; every
# message copied once.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
. "$top_srcdir/tests/integration/lib_servers.sh"
export LC_ALL=C

cyrus_why=$(have_cyrus) || skip_all "Cyrus cannot run here: $cyrus_why"

plain() {	# plain FILE N - an ASCII-only message
	printf 'From: Plain Sender <p@example.com>\r\nTo: x@example.org\r\nSubject: plain %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <plain.%s.%s@last.test>\r\n\r\nBody %s.\r\n' "$2" "$2" "$RANDOM" "$2" >"$1"
}
eightbit() {	# eightbit FILE - a message with UTF-8 header bytes
	printf 'From: J\303\274rgen M\303\274ller <jm@example.com>\r\nTo: x@example.org\r\nSubject: Gr\303\274\303\237e aus M\303\274nchen\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <8bit.%s@last.test>\r\n\r\nHallo.\r\n' "$RANDOM" >"$1"
}

DOVECOT_NAME=dovl check "Dovecot starts" start_dovecot erin:pass || done_testing
CYRUS_NAME=cyrl check "a Cyrus with its default munge8bit starts" \
	start_cyrus frank:pass || done_testing
SRC=$IMAP_PORT_dovl
DST=$IMAP_PORT_cyrl

seeded=1
doveadm_cmd dovl mailbox create -u erin Alpha Beta || seeded=
for i in $(seq 1 40); do
	plain "$T/p.eml" "a$i"
	doveadm_cmd dovl save -u erin -m Alpha <"$T/p.eml" || seeded=
done
eightbit "$T/8bit.eml"
doveadm_cmd dovl save -u erin -m Alpha <"$T/8bit.eml" || seeded=
for i in $(seq 1 6); do
	plain "$T/p.eml" "b$i"
	doveadm_cmd dovl save -u erin -m Beta <"$T/p.eml" || seeded=
done
check "the source holds Alpha (41, the last with 8-bit header bytes) and Beta (6)" \
	test -n "$seeded"
check_output "Alpha on the source" 41 imap_count "$SRC" erin pass Alpha
check_output "Beta on the source" 6 imap_count "$SRC" erin pass Beta

cat >"$T/last.conf" <<EOF2
[global]
state_dir = $T/state
log = stderr

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/last.accounts
tls_verify = no
connections_per_server = 1
EOF2
printf 'erin pass frank pass\n' >"$T/last.accounts"
chmod 600 "$T/last.accounts"
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/last.conf" --once --json \
	>"$T/last.json" 2>>"$T/log/syncd-last.log"
check_output "the pass exits 1 (a copy was altered)" 1 echo $?

# altered JSON - "FOLDER UID" of each problem saying "altered by the destination"
altered() {
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
for a in j["accounts"]:
    for f in a["folders"]:
        for p in f["problems"]:
            if "altered by the destination" in (p["reason"] or ""):
                print(f["source"], p["uid"])' "$1"
}
check_output "exactly one copy reported altered: Alpha's last message (uid 41)" \
	"Alpha 41" altered "$T/last.json"
copied() {	# copied JSON FOLDER - the report's copied count of FOLDER
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(sum(f["copied"] for a in j["accounts"] for f in a["folders"]
          if f["source"] == sys.argv[2]))' "$1" "$2"
}
check_output "Beta: all 6 copied" 6 copied "$T/last.json" Beta

done_testing
