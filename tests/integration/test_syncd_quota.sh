#!/bin/bash
# test_syncd_quota.sh - a destination that refuses APPENDs for good.
#
# The destination Dovecot's quota plugin allows 20 KB for bob; alice's
# source has 60 messages of about 4 KB in INBOX and 30 in Work (about
# 360 KB).  [OVERQUOTA] is a permanent refusal: the first single APPEND
# refused with it stops the account's APPENDs to that server; what is
# left is reported per message as "not tried: over quota", with one log
# line per folder naming the folder, the source UID range and the
# server's text; the pass exits 1 and issues no more APPEND commands
# than messages plus a small constant.  Once the quota is raised, the
# next pass copies exactly what was left, and the mailbox ends whole.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst DOVECOT_EXTRA='mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=20k
}' check "destination Dovecot starts (quota 20 KB)" \
	start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

fill() {
	"$LIB_PYTHON" "$GEN" -q --seed 5 --count 60 --scale 0.001 --folder INBOX \
		--maildir "$T/dovecot/src/mail/alice/Maildir" &&
		"$LIB_PYTHON" "$GEN" -q --seed 5 --start 100 --count 30 --scale 0.001 \
			--folder Work --maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
check "source: 90 generated messages in INBOX and Work" fill
total=$(( $(imap_count "$SRC" alice pass INBOX) + $(imap_count "$SRC" alice pass Work) ))
check_output "the source holds 90 messages" 90 echo "$total"

cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/state
log = stderr
log_level = debug

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
tls_verify = no
EOF
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

# py EXPR FILE - a Python expression over the JSON report j
py() {
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[2]))
problems = [p for a in j["accounts"] for f in a["folders"] for p in f["problems"]]
r = eval(sys.argv[1])
print(r if not isinstance(r, bool) else ("yes" if r else "no"))' "$1" "$2"
}
syncd() {	# syncd RUN - --once --json; report in $T/RUN.json, log in $T/RUN.log
	timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json \
		>"$T/$1.json" 2>"$T/$1.log"
	SYNCD_RC=$?
	cp "$T/$1.log" "$T/log/syncd-$1.log" 2>/dev/null
}
# appends LOG - APPEND commands sent to the destination (a MULTIAPPEND is
# one), from the debug command log
appends() { grep -cE 'dst:[^ ]*: C: A[0-9]+ APPEND ' "$1"; }

syncd pass1
check_output "over quota: the pass exits 1" 1 echo "$SYNCD_RC"
copied=$(py 'sum(f["copied"] for a in j["accounts"] for f in a["folders"])' "$T/pass1.json")
left=$(py 'len([p for p in problems if "over quota" in (p["reason"] or "")])' "$T/pass1.json")
if [ "$copied" -gt 0 ] && [ "$copied" -lt 90 ] && [ $((copied + left)) -eq 90 ]; then
	ok "some messages copied ($copied), every other one reported over quota ($left)"
else
	not_ok "some messages copied, every other one reported over quota" \
		"copied=$copied over-quota=$left" "$(tail -n 20 "$T/pass1.log")"
fi
n=$(appends "$T/pass1.log")
if [ "$n" -gt 0 ] && [ "$n" -le $((90 + 5)) ]; then
	ok "no more APPENDs than messages plus a small constant ($n for 90)"
else
	not_ok "no more APPENDs than messages plus a small constant" "$n APPEND commands" \
		"$(grep -m3 'APPEND' "$T/pass1.log")"
fi
nt=$(py 'len([p for p in problems if (p["reason"] or "").startswith("not tried: over quota")])' "$T/pass1.json")
if [ "$nt" -gt 0 ]; then
	ok "the messages after the refusal are reported \"not tried: over quota\" ($nt)"
else
	not_ok "the messages after the refusal are reported \"not tried: over quota\"" \
		"$(py '[p["reason"] for p in problems][:5]' "$T/pass1.json")"
fi
# One line per folder with folder, UID range and the server's text; no
# line per message.
ql=$(grep -c 'over quota' "$T/pass1.log")
if grep -qE 'Work.*uid [0-9]+(:|-)[0-9]+.*over quota.*[Qq]uota' "$T/pass1.log" &&
	[ "$ql" -le 4 ]; then
	ok "one log line per folder names the folder, the UID range and the server's text ($ql lines)"
else
	not_ok "one log line per folder names the folder, the UID range and the server's text" \
		"$ql lines" "$(grep 'over quota' "$T/pass1.log" | head -5)"
fi

# Raise the quota: the next pass copies what was left, nothing twice.
sed -i 's/quota_rule = \*:storage=20k/quota_rule = *:storage=100M/' "$T/dovecot/dst/dovecot.conf"
check "the destination's quota is raised (doveadm reload)" doveadm_cmd dst reload
sleep 1
syncd pass2
check_output "after the quota is raised: the pass exits 0" 0 echo "$SYNCD_RC"
c2=$(py 'sum(f["copied"] for a in j["accounts"] for f in a["folders"])' "$T/pass2.json")
check_output "the second pass copies exactly what was left" "$((90 - copied))" echo "$c2"
d=$(( $(imap_count "$DST" bob pass INBOX) + $(imap_count "$DST" bob pass Work) ))
check_output "the destination holds the 90 messages, none twice" 90 echo "$d"

done_testing
