#!/bin/bash
# test_syncd_faults.sh - what ferry-syncd does when things go wrong, and
# `ferryctl sync` (DESIGN.md §6 and §8).
#
#   ledger      a message the relay already delivered (an entry in
#               STORE_DB_LEDGER, written by ledger_put exactly as
#               ferry-relay writes it) that shows up on the source after
#               the first pass is not copied by the delta pass and is
#               counted as a duplicate; keyed by the destination user
#               and, when different, by the source user
#   keyword     a destination that refuses a keyword: Dovecot with
#               mail_max_keyword_length = 20 answers an APPEND carrying
#               a longer keyword "NO [CANNOT] Keyword length too long"
#   APPENDLIMIT the destination announces APPENDLIMIT=102400 (and its
#               quota plugin enforces quota_max_mail_size = 100k): a
#               200 KB message is skipped by policy, with the reason
#   dropped     a TCP proxy in front of the destination cuts the first
#               connection that has carried 40 KB of APPENDs, once
#   ferryctl    `ferryctl sync` before any pass (exit 1, clear message),
#               after a pass (table and JSON from "syncd.progress")
# Each failure must end in the report (--json) with a reason, and the
# run must go on: every other message is copied, none twice.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD" "$FERRYCTL"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py
LEDGER_PUT=$top_builddir/tests/integration/ledger_put
LONGKW=ThisKeywordIsFarTooLongForDst

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot alice:pass frank:pass || done_testing
DOVECOT_NAME=dst DOVECOT_EXTRA='mail_plugins = $mail_plugins quota
mail_max_keyword_length = 20
imap_capability = +APPENDLIMIT=102400
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = 100k
  quota_rule = *:storage=0
}' check "destination Dovecot starts (APPENDLIMIT, short keywords)" \
	start_dovecot bob:pass gina:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# py EXPR FILE - evaluate a Python expression over the JSON document j
py() {
	"$LIB_PYTHON" -c 'import json, sys
try:
    j = json.load(open(sys.argv[2]))
    problems = [p for a in j.get("accounts", []) for f in a.get("folders", [])
                for p in f["problems"]]
    reasons = [p["reason"] or "" for p in problems] + \
        [f["error"] for a in j.get("accounts", []) for f in a.get("folders", [])
         if f["error"]] + \
        [a["error"] for a in j.get("accounts", []) if a["error"]]
    r = eval(sys.argv[1])
except Exception as e:
    print("PYERR: %s: %s" % (type(e).__name__, e))
    sys.exit(1)
print(r if not isinstance(r, bool) else ("yes" if r else "no"))' "$1" "$2"
}

# msg FILE SUBJECT [BODYBYTES] - a small test message with a unique id
msg() {
	{
		printf 'From: Test <test@example.com>\r\nTo: x@example.org\r\n'
		printf 'Subject: %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n' "$2"
		printf 'Message-ID: <%s.%s@faults.test>\r\n\r\n' "${2// /-}" "$RANDOM"
		printf 'Hello, this is %s.\r\n' "$2"
		if [ -n "${3:-}" ]; then
			head -c "$3" /dev/urandom | base64 -w 76 | sed 's/$/\r/'
		fi
	} >"$1"
}

fill_alice() {
	"$LIB_PYTHON" "$GEN" -q --seed 3 --count 40 --scale 0.01 --folder INBOX \
		--maildir "$T/dovecot/src/mail/alice/Maildir" &&
		"$LIB_PYTHON" "$GEN" -q --seed 3 --start 100 --count 20 --scale 0.01 \
			--folder Work --maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	msg "$T/big.eml" "big over APPENDLIMIT" 150000
	msg "$T/kw.eml" "long keyword"
	imap_append "$SRC" alice pass INBOX "$T/big.eml" '\Seen' &&
		imap_append "$SRC" alice pass Work "$T/kw.eml" "\\Seen $LONGKW"
}
check "source: 60 generated messages, one of 200 KB, one with a 29-character keyword" \
	fill_alice

syncd_conf() {	# syncd_conf FILE STATE_DIR ACCOUNTS DST_PORT
	cat >"$1" <<EOF
[global]
state_dir = $2
log = stderr
log_level = info

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$4?tls=none
accounts = $3
tls_verify = no
EOF
}
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
syncd_conf "$T/syncd.conf" "$T/state" "$T/accounts" "$DST"

# --- ferryctl sync before anything ran ------------------------------------------

"$FERRYCTL" -c "$T/syncd.conf" sync >"$T/ctl0.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -qi 'never run' "$T/ctl0.out"; then
	ok "ferryctl sync before any pass: exit 1, \"never run\""
else
	not_ok "ferryctl sync before any pass: exit 1, \"never run\"" "exit $rc" \
		"$(cat "$T/ctl0.out")"
fi

# syncd RUN [CONF] - ferry-syncd --once --json; report in $T/RUN.json,
# exit code in SYNCD_RC.  A pass that hangs is killed after 60 s.
syncd() {
	timeout -s KILL 60 "$FERRY_SYNCD" -c "${2:-$T/syncd.conf}" --once --json \
		>"$T/$1.json" 2>"$T/log/syncd-$1.log"
	SYNCD_RC=$?
}

# --- the first pass: APPENDLIMIT and the refused keyword -----------------------

syncd pass1
if [ $SYNCD_RC -eq 1 ] && [ "$(py 'j["complete"]' "$T/pass1.json")" = no ]; then
	ok "first pass: exit 1, the report says something is missing"
else
	not_ok "first pass: exit 1, the report says something is missing" \
		"exit $SYNCD_RC" "$(tail -n 10 "$T/log/syncd-pass1.log")"
fi
# Checked before the body is fetched: the subject may be unknown, the
# size (RFC822.SIZE) is not.
got=$(py '[(p["kind"], p["reason"]) for p in problems if (p["size"] or 0) > 102400]' \
	"$T/pass1.json" 2>&1)
if [[ $got == *"'policy'"* ]] && grep -qi 'limit' <<<"$got"; then
	ok "the 200 KB message is skipped by policy, reason given: $got"
else
	not_ok "the 200 KB message is skipped by policy with an APPENDLIMIT reason" "got: $got"
fi
got=$(py '[r for r in reasons if "keyword" in r.lower()]' "$T/pass1.json" 2>&1)
if [[ $got == "["* ]] && [ "$got" != "[]" ]; then
	ok "the refused keyword is in the report with a reason: $got"
else
	not_ok "the refused keyword is in the report with a reason" \
		"reasons: $(py reasons "$T/pass1.json" 2>&1)"
fi

"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass >"$T/src1.digest"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst1.digest"
# Every source message but the big one (and the keyword one, if it was
# refused rather than copied without its keyword) is on the destination.
grep -v -e 'big-over-APPENDLIMIT' -e 'long-keyword' "$T/src1.digest" | cut -f1-3 >"$T/want1"
grep -v -e 'long-keyword' "$T/dst1.digest" | cut -f1-3 >"$T/have1"
if cmp -s "$T/want1" "$T/have1"; then
	ok "the run goes on: the other $(wc -l <"$T/want1") messages are copied, once each"
else
	not_ok "the run goes on: the other messages are copied, once each" \
		"$(diff "$T/want1" "$T/have1" | head -n 6)"
fi
# The report counts as missing exactly what the destination lacks.
absent=$(comm -23 <(cut -f1-2 "$T/src1.digest") <(cut -f1-2 "$T/dst1.digest") | wc -l)
got=$(py 'j["totals"]["missing"]' "$T/pass1.json" 2>&1)
if [ "$got" = "$absent" ]; then
	ok "the report's missing count ($got) is what the destination lacks"
else
	not_ok "the report's missing count is what the destination lacks" \
		"report: missing $got; not on the destination: $absent" \
		"verdict: $(py 'j["verdict"]' "$T/pass1.json" 2>&1)"
fi
if grep -q 'big-over-APPENDLIMIT' "$T/dst1.digest"; then
	not_ok "the message over APPENDLIMIT is not on the destination"
else
	ok "the message over APPENDLIMIT is not on the destination"
fi
if grep 'long-keyword' "$T/dst1.digest" | grep -q "$LONGKW"; then
	not_ok "the refused keyword is not on the destination"
else
	ok "the refused keyword is not on the destination"
fi

# --- ferryctl sync after a pass ----------------------------------------------------

"$FERRYCTL" -c "$T/syncd.conf" sync >"$T/ctl1.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q 'not running' "$T/ctl1.out" &&
	grep -qE '^alice +(done|failed) +[0-9]+/[0-9]+ +[1-9][0-9]* +[0-9]+' "$T/ctl1.out" &&
	grep -q 'verdict: ' "$T/ctl1.out"; then
	ok "ferryctl sync: not running, last verdict, a row for alice"
else
	not_ok "ferryctl sync: not running, last verdict, a row for alice" "exit $rc" \
		"$(cat "$T/ctl1.out")"
fi
"$FERRYCTL" -c "$T/syncd.conf" sync --json >"$T/ctl1.json" 2>&1
rc=$?
got=$(py '(j["running"], j["accounts"][0]["user"], j["accounts"][0]["state"] in ("done", "failed"), j["last_pass"]["finished"] > 0, j["last_pass"]["complete"], j["copied"] > 0)' \
	"$T/ctl1.json" 2>&1)
if [ $rc -eq 0 ] && [ "$got" = "(False, 'alice', True, True, False, True)" ]; then
	ok "ferryctl sync --json: the progress record (not running, last pass incomplete)"
else
	not_ok "ferryctl sync --json: the progress record" "exit $rc" "got: $got" \
		"$(head -c 600 "$T/ctl1.json")"
fi

# --- the ledger --------------------------------------------------------------------

msg "$T/l1.eml" "ledger for bob"
msg "$T/l2.eml" "ledger for alice"
msg "$T/n1.eml" "not in the ledger"
ledger_setup() {
	imap_append "$SRC" alice pass INBOX "$T/l1.eml" &&
		imap_append "$SRC" alice pass INBOX "$T/l2.eml" &&
		imap_append "$SRC" alice pass INBOX "$T/n1.eml" &&
		"$LEDGER_PUT" "$T/state" bob "$T/l1.eml" &&
		"$LEDGER_PUT" "$T/state" alice "$T/l2.eml"
}
check "three new messages on the source, two of them in the relay's ledger" ledger_setup

syncd pass2
got=$(py '(j["totals"]["duplicates"], j["totals"]["copied"])' "$T/pass2.json" 2>&1)
case $got in
"(2, 1)" | "(2, 2)")
	# 2 copied: the keyword message, retried without the keyword.
	ok "delta pass: the two ledger messages counted as duplicates, the third copied ($got)" ;;
*)
	not_ok "delta pass: two duplicates (ledger), one copied" "got (duplicates, copied) = $got" \
		"$(tail -n 10 "$T/log/syncd-pass2.log")" ;;
esac
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst2.digest"
if grep -q 'not-in-the-ledger' "$T/dst2.digest" &&
	! grep -q 'ledger-for-' "$T/dst2.digest"; then
	ok "the ledger messages are not copied, the other one is"
else
	not_ok "the ledger messages are not copied, the other one is" \
		"$(grep -i ledger "$T/dst2.digest")"
fi
syncd pass3
got=$(py 'j["totals"]["copied"]' "$T/pass3.json" 2>&1)
if [ "$got" = 0 ] && ! grep -q 'ledger-for-' <("$LIB_PYTHON" "$DIGEST" "$DST" bob pass); then
	ok "the next pass copies nothing (the duplicates are remembered)"
else
	not_ok "the next pass copies nothing" "copied: $got"
fi

# --- a dropped connection ---------------------------------------------------------

cat >"$T/cutproxy.py" <<'EOF'
# cutproxy.py PORTFILE DSTPORT CUT LOG - forward 127.0.0.1 connections to
# 127.0.0.1:DSTPORT; the first connection whose client has sent more than
# CUT bytes is closed (both ways) at that point, once.
import os, select, socket, sys, threading

portfile, dport, cut, logf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
state = {"cut": False}

def log(s):
    with open(logf, "a") as f:
        f.write(s + "\n")

def pipe(c):
    s = socket.create_connection(("127.0.0.1", dport))
    sent = 0
    try:
        while True:
            r, _, _ = select.select([c, s], [], [])
            if c in r:
                d = c.recv(65536)
                if not d:
                    return
                with lock:
                    doit = not state["cut"] and sent + len(d) > cut
                    if doit:
                        state["cut"] = True
                if doit:
                    s.sendall(d[:max(0, cut - sent)])
                    log("cut after %d bytes" % cut)
                    return
                sent += len(d)
                s.sendall(d)
            if s in r:
                d = s.recv(65536)
                if not d:
                    return
                c.sendall(d)
    except OSError:
        pass
    finally:
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(32)
with open(portfile + ".tmp", "w") as f:
    f.write(str(l.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    c, _ = l.accept()
    threading.Thread(target=pipe, args=(c,), daemon=True).start()
EOF
start_proxy() {
	local i
	spawn cutproxy "$LIB_PYTHON" "$T/cutproxy.py" "$T/proxy.port" "$DST" 40000 "$T/proxy.log"
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/proxy.port" ] && break
		sleep 0.05
	done
	PROXY_PORT=$(cat "$T/proxy.port") && wait_port "$PROXY_PORT"
}
fill_frank() {
	"$LIB_PYTHON" "$GEN" -q --seed 5 --count 150 --scale 0.01 --folder INBOX \
		--maildir "$T/dovecot/src/mail/frank/Maildir" &&
		"$LIB_PYTHON" "$GEN" -q --seed 5 --start 500 --count 50 --scale 0.01 \
			--folder Archive --maildir "$T/dovecot/src/mail/frank/Maildir" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	# every message under the destination's 100 KB limit
	! find "$T/dovecot/src/mail/frank/Maildir" -type f -size +90k | grep -q .
}
check "source: 200 more messages for frank" fill_frank
check "a proxy that cuts one destination connection" start_proxy
printf 'frank pass gina pass\n' >"$T/accounts2"
chmod 600 "$T/accounts2"
syncd_conf "$T/drop.conf" "$T/state2" "$T/accounts2" "$PROXY_PORT"

SECONDS=0
syncd drop1 "$T/drop.conf"
took=$SECONDS
if grep -q 'cut after' "$T/proxy.log" 2>/dev/null; then
	ok "the proxy cut a destination connection in the middle of the copy"
else
	not_ok "the proxy cut a destination connection in the middle of the copy" \
		"$(cat "$T/proxy.log" 2>/dev/null)"
fi
complete=$(py 'j["complete"]' "$T/drop1.json" 2>&1)
nreasons=$(py 'len([r for r in reasons if r.strip()])' "$T/drop1.json" 2>&1)
missing=$(py 'j["totals"]["missing"]' "$T/drop1.json" 2>&1)
if [ $SYNCD_RC -eq 0 ] && [ "$complete" = yes ]; then
	ok "dropped connection: the pass reconnected and completed in ${took}s"
elif [ $SYNCD_RC -eq 1 ] && [ "$complete" = no ] && [ "$nreasons" -gt 0 ] 2>/dev/null; then
	ok "dropped connection: the pass ended in ${took}s, $missing missing, with reasons: $(py reasons "$T/drop1.json")"
else
	not_ok "dropped connection: the pass ends, complete or with reasons" \
		"exit $SYNCD_RC after ${took}s, complete=$complete, reasons=$nreasons" \
		"$(tail -n 10 "$T/log/syncd-drop1.log")"
fi
"$LIB_PYTHON" "$DIGEST" "$SRC" frank pass | cut -f1-3 >"$T/frank.ids"
"$LIB_PYTHON" "$DIGEST" "$DST" gina pass | cut -f1-3 >"$T/gina1.ids"
copied1=$(wc -l <"$T/gina1.ids")
if [ "$copied1" -gt 0 ] && [ -z "$(sort "$T/gina1.ids" | uniq -d)" ] &&
	[ -z "$(comm -13 "$T/frank.ids" "$T/gina1.ids")" ]; then
	ok "dropped connection: the run went on ($copied1 of $(wc -l <"$T/frank.ids") copied), nothing twice"
else
	not_ok "dropped connection: the run went on, nothing twice" \
		"$copied1 on the destination" "$(sort "$T/gina1.ids" | uniq -d | head -n 3)"
fi
syncd drop2 "$T/drop.conf"
"$LIB_PYTHON" "$DIGEST" "$DST" gina pass | cut -f1-3 >"$T/gina2.ids"
if [ $SYNCD_RC -eq 0 ] && cmp -s "$T/frank.ids" "$T/gina2.ids"; then
	ok "after one more pass every message is on the destination exactly once"
else
	not_ok "after one more pass every message is on the destination exactly once" \
		"exit $SYNCD_RC" "$(diff "$T/frank.ids" "$T/gina2.ids" | head -n 6)"
fi

done_testing
