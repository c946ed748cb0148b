#!/bin/bash
# test_cutover_live.sh - the ferry-syncd daemon with a [cutover] domain:
# once the MX answers the new provider, the destination is live.
#
# Two runs of the daemon against the same Dovecots, each with [syncd]
# delete = yes and a dnsmasq as the only [cutover] resolver:
#   - MX = the old host: a flag set on the source and a message expunged
#     there reach the destination (the usual delta pass);
#   - MX = the new provider: the catch-up pass starts at once (before the
#     hour-long [syncd] interval), copies a new message, but neither
#     changes the flags of a message already on the destination nor
#     deletes one there.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm dnsmasq dig "$FERRY_SYNCD" "$FERRYCTL"

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
msg() { # msg N - a message file
	printf 'From: s@example.org\r\nTo: alice@example.test\r\nSubject: m%s\r\nMessage-ID: <live%s@example.org>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\nbody %s\r\n' \
		"$1" "$1" "$1" >"$T/m$1.eml"
}
for i in 1 2 3 4; do msg "$i"; done
check "four messages in the source" eval 'for i in 1 2 3 4; do imap_append $SRC alice pass INBOX $T/m$i.eml || exit 1; done'

printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
start_dns <<EOF
MX example.test 10 mx.old.test
EOF
cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/state
log = stderr
[syncd]
http =
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
interval = 1h
delete = yes
[cutover]
domains = example.test
resolvers = 127.0.0.1:$DNS_PORT
new_mx = mx.new.test
old_mx = mx.old.test
check_interval = 1s
catchup_interval = 1h
quiet_period = 1h
EOF
wait_for() { # wait_for COUNT PATTERN FILE
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(grep -c -- "$2" "$3" 2>/dev/null)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
flags_of() { # flags_of PORT USER - "uid flags" of INBOX, one a line
	imap_flags "$1" "$2" pass INBOX
}
dst_flagged() { flags_of "$DST" bob | grep -c 'Flagged'; }

# --- MX = old: the delta pass mirrors flags and deletions ---------------------
spawn syncd-old "$FERRY_SYNCD" -d -c "$T/syncd.conf"
p=$SPAWN_PID
LOG=$T/log/syncd-old.log
check "first pass done while the MX is the old host" wait_for 1 "pass 1: done" "$LOG"
check_output "the destination holds the four messages" 4 imap_count "$DST" bob pass INBOX
stop_pid "$p"
imap_cmd "$SRC" alice pass 'SELECT INBOX' 'UID STORE 1 +FLAGS (\Flagged)' \
	'UID STORE 4 +FLAGS (\Deleted)' 'EXPUNGE' >/dev/null
spawn syncd-old2 "$FERRY_SYNCD" -d -c "$T/syncd.conf"
p=$SPAWN_PID
LOG=$T/log/syncd-old2.log
check "a pass after the restart" wait_for 1 "pass 1: done" "$LOG"
check_output "MX old: the source's new flag reached the destination" 1 dst_flagged
check_output "MX old: the message expunged on the source was deleted there" 3 \
	imap_count "$DST" bob pass INBOX
if grep -q "catch-up pass now" "$LOG"; then
	not_ok "no catch-up while every resolver answers old" "$(grep "catch-up" "$LOG")"
else
	ok "no catch-up while every resolver answers old"
fi

# --- MX = new: catch-up at once, the destination is live -----------------------
imap_cmd "$SRC" alice pass 'SELECT INBOX' 'UID STORE 2 +FLAGS (\Flagged)' \
	'UID STORE 3 +FLAGS (\Deleted)' 'EXPUNGE' >/dev/null
msg 5
imap_append "$SRC" alice pass INBOX "$T/m5.eml"
update_dns <<EOF
MX example.test 10 mx.new.test
EOF
t0=$(date +%s)
check "the switch starts a catch-up pass although [syncd] interval is 1h" \
	wait_for 1 "pass 2: done" "$LOG"
t1=$(date +%s)
if [ $((t1 - t0)) -le 20 ]; then
	ok "the catch-up pass ended within 20 s of the switch ($((t1 - t0)) s)"
else
	not_ok "the catch-up pass ended within 20 s of the switch ($((t1 - t0)) s)"
fi
check_output "MX new: the new message was copied, nothing deleted" 4 \
	imap_count "$DST" bob pass INBOX
check_output "MX new: a flag set on the source is not pushed to the live destination" 1 dst_flagged
"$FERRYCTL" -c "$T/syncd.conf" --json status >"$T/status.json"
check_output "ferryctl status shows the domain past synced" ok \
	"$LIB_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
print("ok" if d["domain"] == "example.test" and d["phase"] in ("switching", "dual-reception") else d)
' "$T/status.json"
stop_pid "$p"

done_testing
