#!/bin/bash
# test_ctl_report.sh - ferryctl report (ctl/ctl_report*.c) against two
# real Dovecot instances.  Before any verification the report says "not
# verified" and the verdict is "not accepted".  After a --once copy and
# ferry-syncd --verify: the report in JSON (parsed by python3's json),
# Markdown and HTML (parsed by html.parser) shows the verification with
# its folders and content digest, the copy history, the cutover timeline
# of the account's domain and the verdict "accepted"; -o FILE.html picks
# HTML and writes it whole; the HTML is self-contained (no script, no
# external asset) and has print rules; a Subject made of markup is
# escaped in every format.  Verified again with nothing changed, the
# digest is the same.  A pass with the destination down is in the copy
# history with its reason (JSON and Markdown).  ferry-relay on the same
# store, one message sent to alice@example.test twice: the report counts
# it received 1, forwarded 1, deduplicated 1 for that address and 0 for
# bob's; one to bob refused upstream with a 5xx: bob received 1, bounced
# 1.  A message deleted on the destination by hand: verify again and the
# report lists it missing (with its subject) and says "not accepted",
# with a different digest.  Bad input: an
# unknown --account, an unknown --format and an unreadable store exit 2
# and leave nothing written.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot doveadm smtp-sink dnsmasq mdb_stat "$LIB_PYTHON"
export LC_ALL=C

CUTOVER_PUT=$top_builddir/tests/integration/cutover_put
for b in "$FERRY_SYNCD" "$FERRYCTL" "$CUTOVER_PUT"; do
	[ -x "$b" ] || {
		echo "Bail out! $b not built"
		exit 1
	}
done

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" \
	start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

HOSTILE='<script>alert(1)</script> | *bold* & "quoted"'

# msg FILE SUBJECT - a small message with a unique Message-ID
msg() {
	{
		printf 'From: "Eve <eve@x>" <test@example.com>\r\nTo: x@example.org\r\n'
		printf 'Subject: %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n' "$2"
		printf 'Message-ID: <m%s.%s@report.test>\r\n' "$RANDOM" "$RANDOM"
		printf '\r\nHello, this is message %s.\r\n' "$RANDOM"
	} >"$1"
}
fill() {
	local i
	for i in 1 2 3 4; do
		msg "$T/m$i.eml" "plain message $i" &&
			imap_append "$SRC" alice pass INBOX "$T/m$i.eml" '\Seen' ||
			return 1
	done
	imap_cmd "$SRC" alice pass "CREATE Work" >/dev/null &&
		msg "$T/h.eml" "$HOSTILE" &&
		imap_append "$SRC" alice pass INBOX "$T/h.eml" '\Seen' &&
		msg "$T/w.eml" "work message" &&
		imap_append "$SRC" alice pass Work "$T/w.eml" ''
}
check "source: 5 messages in INBOX (one with a Subject of markup), 1 in Work" fill

cat >"$T/mailferry.conf" <<CONF
[global]
state_dir = $T/state
log = stderr
log_level = info

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
tls_verify = no

[cutover]
domains = example.test
new_mx = mx.new.test
old_mx = mx.old.test
CONF
RELAY_PORT=$(free_port)
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
mkdir -p "$T/log" "$T/state"

# report NAME [ARGS...] - ferryctl report; stdout in $T/NAME.out,
# stderr in $T/log/NAME.err, exit code in RRC
report() {
	local name=$1
	shift
	timeout -s KILL 60 "$FERRYCTL" -c "$T/mailferry.conf" report "$@" \
		>"$T/$name.out" 2>"$T/log/$name.err"
	RRC=$?
}

# --- before anything: not verified ------------------------------------------------
report before --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/before.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["accounts"][0]
assert a["account"] == "alice", a
assert a["verify"] is None, a
assert a["verdict"] == "not accepted", a
assert any("not verified" in r and "ferry-syncd --verify" in r
           for r in a["reasons"]), a
assert d["total"]["verdict"] == "not accepted", d["total"]
PY
then
	ok "no store yet: the report says not verified, not accepted (exit 0)"
else
	not_ok "no store yet: the report says not verified, not accepted (exit 0)" \
		"exit $RRC" "$(cat "$T/before.out" "$T/log/before.err")"
fi

# --- copy, cutover record, verify --------------------------------------------------
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/mailferry.conf" --once \
	>"$T/log/once.log" 2>&1
check "the copy (--once): 6 messages copied" grep -q '6 copied' "$T/log/once.log"
check "a cutover record for example.test (synced)" \
	"$CUTOVER_PUT" "$T/state" example.test synced
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/mailferry.conf" --verify \
	>"$T/log/verify1.out" 2>"$T/log/verify1.err"
check "ferry-syncd --verify: complete (exit 0)" [ $? -eq 0 ]

report ok --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/ok.out" "$HOSTILE" >"$T/digest1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["accounts"][0]
v = a["verify"]
assert a["verdict"] == "accepted" and a["reasons"] == [], a
assert v["verdict"] == "complete" and v["src_messages"] == 6, v
assert v["dst_messages"] == 6 and v["missing"] == 0, v
assert len(v["digest"]) == 64, v
assert {f["src"] for f in v["folders"]} >= {"INBOX", "Work"}, v
assert len(a["passes"]) == 1 and a["passes"][0]["copied"] == 6, a["passes"]
c = a["cutover"]
assert a["domain"] == "example.test" and c["phase"] == "synced", a
assert c["timeline"][-1]["to"] == "synced" and c["timeline"][-1]["at"], c
t = d["total"]
assert t["verdict"] == "accepted" and t["accounts"] == 1, t
assert t["accepted_accounts"] == 1 and len(t["digest"]) == 64, t
print(v["digest"])
PY
then
	ok "after copy and verify: JSON says accepted, with folders, digest, passes, cutover timeline"
else
	not_ok "after copy and verify: JSON says accepted, with folders, digest, passes, cutover timeline" \
		"exit $RRC" "$(cat "$T/ok.out" "$T/log/ok.err")"
fi

report okmd
if [ "$RRC" -eq 0 ] && grep -q '^# Acceptance report' "$T/okmd.out" &&
	grep -q '^\*\*Verdict: accepted\*\* (1 of 1 account accepted)' "$T/okmd.out" &&
	grep -q '^## Account alice → bob' "$T/okmd.out" &&
	grep -q "Content digest (SHA-256): \`$(cat "$T/digest1")\`" "$T/okmd.out" &&
	grep -q '^| INBOX | INBOX | 5 | 5 |' "$T/okmd.out" &&
	grep -q '^### Copy history' "$T/okmd.out" &&
	grep -q 'phase \*\*synced\*\*' "$T/okmd.out" &&
	grep -q '| presync | synced | cutover\\_put |' "$T/okmd.out"; then
	ok "Markdown (the default): verdict, folders, digest, copy history, cutover timeline"
else
	not_ok "Markdown (the default): verdict, folders, digest, copy history, cutover timeline" \
		"exit $RRC" "$(cat "$T/okmd.out" "$T/log/okmd.err")"
fi

# --- a second verify with nothing changed: the same digest ---------------------------
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/mailferry.conf" --verify \
	>"$T/log/verify1b.out" 2>"$T/log/verify1b.err"
check "ferry-syncd --verify again, nothing changed: complete (exit 0)" [ $? -eq 0 ]
report again --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/again.out" "$(cat "$T/digest1")" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d["accounts"][0]["verify"]
assert v["verdict"] == "complete" and v["digest"] == sys.argv[2], v
PY
then
	ok "verified again with nothing changed: the same content digest"
else
	not_ok "verified again with nothing changed: the same content digest" \
		"exit $RRC" "$(cat "$T/again.out" "$T/log/again.err")"
fi

# --- a pass that failed: in the copy history with its reason --------------------------
sed "s|^destination = .*|destination = imap://127.0.0.1:$(free_port)?tls=none|" \
	"$T/mailferry.conf" >"$T/down.conf"
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/down.conf" --once >"$T/log/down.log" 2>&1
check "a pass with the destination down: exit 1" [ $? -eq 1 ]
report failed --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/failed.out" >"$T/failed.why" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["accounts"][0]["passes"]
assert len(p) == 2 and p[0]["copied"] == 6, p
last = p[-1]
assert last["copied"] == 0 and last["error"], last
print(last["error"])
PY
then
	ok "the failed pass is in the copy history with its reason ($(cat "$T/failed.why"))"
else
	not_ok "the failed pass is in the copy history with its reason" \
		"exit $RRC" "$(cat "$T/failed.out" "$T/log/failed.err")"
fi
report failedmd
check "Markdown: the failed pass's reason in the copy history" \
	grep -qF "$(head -c 40 "$T/failed.why")" "$T/failedmd.out"

# --- the relay's figures per address ---------------------------------------------
relay_up() {
	start_dns <<'DNS' &&
TXT a.test "v=spf1 ip4:127.0.0.1 -all"
DNS
		start_smtp_sink || return 1
	cat >>"$T/mailferry.conf" <<CONF

[relay]
listen = 127.0.0.1:$RELAY_PORT
hostname = relay.test
domains = example.test
[forward]
upstream = 127.0.0.1:$SINK_PORT
tls = none
connect_timeout = 2s
retry_initial = 1s
retry_max = 1s
[checks]
dns = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
[dedupe]
ttl = 1d
[control]
socket = $T/state/control.sock
CONF
	spawn relay "$FERRY_RELAY" -d -c "$T/mailferry.conf" &&
		RELAY_PID=$SPAWN_PID && wait_port "$RELAY_PORT" 10
}
check "dnsmasq, smtp-sink and ferry-relay (sharing the store) start" relay_up
send_twice() {
	local r i n
	msg "$T/r.eml" "through the relay"
	for i in 1 2; do
		r=$("$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$RELAY_PORT" sender@a.test \
			alice@example.test "$T/r.eml" | tail -n 1)
		case $r in "DATA 250 "*) ;; *) echo "$r" >&2; return 1 ;; esac
	done
	sink_wait 1 10 || return 1
	for ((i = 0; i < 100; i++)); do
		n=$(mdb_stat -s queue "$T/state/db" | awk '/Entries:/ { print $2 }')
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
check "one message sent twice to alice@example.test: forwarded once" send_twice
stop_pid "$RELAY_PID"
report relay --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/relay.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["accounts"][0]["relay"]
by = {a["address"]: a for a in r["addresses"]}
assert set(by) == {"alice@example.test", "bob@example.test"}, r
a = by["alice@example.test"]
assert (a["received"], a["forwarded"], a["duplicates"], a["bounced"]) == \
    (1, 1, 1, 0), a
assert a["last"] is not None, a
b = by["bob@example.test"]
assert (b["received"], b["forwarded"], b["duplicates"]) == (0, 0, 0), b
assert (r["received"], r["forwarded"], r["duplicates"]) == (1, 1, 1), r
t = d["total"]["relay"]
assert (t["received"], t["forwarded"], t["duplicates"]) == (1, 1, 1), t
PY
then
	ok "the relay's figures per address: alice received 1, forwarded 1, deduplicated 1; bob 0"
else
	not_ok "the relay's figures per address: alice received 1, forwarded 1, deduplicated 1; bob 0" \
		"exit $RRC" "$(cat "$T/relay.out" "$T/log/relay.err")"
fi
report relaymd
check "Markdown: the relay's table per address" \
	grep -q '^| alice@example\.test | 1 | 1 | 1 | 0 | 20' "$T/relaymd.out"

# --- a recipient the new provider refuses: bounced ------------------------------------
bounce_one() {
	local r i
	stop_smtp_sink
	start_smtp_sink -f RCPT || return 1	# every RCPT gets a 5xx
	spawn relay "$FERRY_RELAY" -d -c "$T/mailferry.conf" &&
		RELAY_PID=$SPAWN_PID && wait_port "$RELAY_PORT" 10 || return 1
	msg "$T/b.eml" "refused upstream"
	r=$("$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$RELAY_PORT" sender@a.test \
		bob@example.test "$T/b.eml" | tail -n 1)
	case $r in "DATA 250 "*) ;; *) echo "$r" >&2; return 1 ;; esac
	# (its DSN waits for a.test, which has no address here)
	for ((i = 0; i < 150; i++)); do
		grep -q 'to=<bob@example.test> .*status=bounced' "$T/log/relay.log" &&
			return 0
		sleep 0.1
	done
	return 1
}
check "a message to bob@example.test refused upstream with 5xx is bounced" bounce_one
stop_pid "$RELAY_PID"
report bounce --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/bounce.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["accounts"][0]["relay"]
by = {a["address"]: a for a in r["addresses"]}
b = by["bob@example.test"]
assert (b["received"], b["forwarded"], b["bounced"]) == (1, 0, 1), b
assert by["alice@example.test"]["bounced"] == 0, by
assert r["bounced"] == 1 and d["total"]["relay"]["bounced"] == 1, r
PY
then
	ok "the relay's figures per address: bob received 1, bounced 1"
else
	not_ok "the relay's figures per address: bob received 1, bounced 1" \
		"exit $RRC" "$(cat "$T/bounce.out" "$T/log/bounce.err")"
fi

# --- a message deleted on the destination by hand ----------------------------------
del() {
	local uid
	uid=$(imap_cmd "$DST" bob pass "EXAMINE INBOX" 'UID SEARCH SUBJECT "script"' |
		tr -d '\r' | sed -n 's/^\* SEARCH \([0-9]*\).*/\1/p')
	[ -n "$uid" ] && imap_cmd "$DST" bob pass "SELECT INBOX" \
		"UID STORE $uid +FLAGS.SILENT (\\Deleted)" "UID EXPUNGE $uid" >/dev/null
}
check "on the destination: the message with the Subject of markup expunged" del
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/mailferry.conf" --verify \
	>"$T/log/verify2.out" 2>"$T/log/verify2.err"
check "ferry-syncd --verify: incomplete (exit 1)" [ $? -eq 1 ]

report bad --format json
if [ "$RRC" -eq 0 ] && "$LIB_PYTHON" - "$T/bad.out" "$HOSTILE" "$(cat "$T/digest1")" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["accounts"][0]
v = a["verify"]
assert a["verdict"] == "not accepted", a
assert any("1 missing" in r for r in a["reasons"]), a
assert v["missing"] == 1 and v["digest"] != sys.argv[3], v
miss = [i for i in v["issues"] if i["kind"] == "missing"]
assert len(miss) == 1 and miss[0]["subject"] == sys.argv[2], miss
assert miss[0]["folder"] == "INBOX" and miss[0]["uid"] == 5, miss
assert d["total"]["verdict"] == "not accepted", d["total"]
PY
then
	ok "deleted on the destination: JSON lists it missing (subject exact), not accepted, digest changed"
else
	not_ok "deleted on the destination: JSON lists it missing (subject exact), not accepted, digest changed" \
		"exit $RRC" "$(cat "$T/bad.out" "$T/log/bad.err")"
fi

report badmd --format md
if [ "$RRC" -eq 0 ] && grep -q '^\*\*Verdict: not accepted\*\*' "$T/badmd.out" &&
	grep -qF '| missing | INBOX | 5 |' "$T/badmd.out" &&
	grep -qF '\<script\>alert\(1\)\</script\> \| \*bold\* \& "quoted"' "$T/badmd.out" &&
	! grep -qF '<script>' "$T/badmd.out"; then
	ok "Markdown: the missing message listed, its Subject escaped (no raw markup, no extra cell)"
else
	not_ok "Markdown: the missing message listed, its Subject escaped (no raw markup, no extra cell)" \
		"exit $RRC" "$(cat "$T/badmd.out" "$T/log/badmd.err")"
fi

rm -f "$T/r.html"
report html -o "$T/r.html"
if [ "$RRC" -eq 0 ] && [ ! -s "$T/html.out" ] &&
	[ -z "$(ls "$T" | grep 'r.html.tmp')" ] &&
	"$LIB_PYTHON" - "$T/r.html" "$HOSTILE" <<'PY'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.style, self.instyle = [], [], "", False
        self.ext = []
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.instyle = tag == "style"
        for k, v in attrs:
            if k in ("src", "href") or (k.startswith("on")):
                self.ext.append((tag, k, v))
    def handle_endtag(self, tag):
        self.instyle = False
    def handle_data(self, data):
        if self.instyle:
            self.style += data
        else:
            self.text.append(data)
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
text = "".join(p.text)
assert "script" not in p.tags and "link" not in p.tags, p.tags
assert "img" not in p.tags and not p.ext, p.ext
assert "@media print" in p.style, p.style
assert "url(" not in p.style and "@import" not in p.style, p.style
assert "not accepted" in text and "missing" in text, text
assert sys.argv[2] in text, "the subject is not shown as text"
assert "Cutover timeline" in text and "Copy history" in text, text
assert p.tags.count("table") >= 4, p.tags
PY
then
	ok "-o FILE.html: self-contained HTML (no script, no external asset, print rules), subject as text"
else
	not_ok "-o FILE.html: self-contained HTML (no script, no external asset, print rules), subject as text" \
		"exit $RRC" "$(cat "$T/log/html.err")" "$(head -c 3000 "$T/r.html" 2>&1)"
fi

# --- bad input ------------------------------------------------------------------
report unk --account nobody -o "$T/unk.md"
if [ "$RRC" -eq 2 ] && grep -q 'no account "nobody"' "$T/log/unk.err" &&
	[ ! -e "$T/unk.md" ] && [ -z "$(ls "$T" | grep 'unk.md.tmp')" ]; then
	ok "an unknown --account: a clear error, exit 2, nothing written"
else
	not_ok "an unknown --account: a clear error, exit 2, nothing written" \
		"exit $RRC" "$(cat "$T/log/unk.err")" "$(ls "$T")"
fi
report fmt --format pdf -o "$T/fmt.out2"
if [ "$RRC" -eq 2 ] && grep -q 'unknown format "pdf"' "$T/log/fmt.err" &&
	[ ! -e "$T/fmt.out2" ] && [ ! -s "$T/fmt.out" ]; then
	ok "an unknown --format: a clear error, exit 2, nothing written"
else
	not_ok "an unknown --format: a clear error, exit 2, nothing written" \
		"exit $RRC" "$(cat "$T/log/fmt.err")"
fi
cp "$T/state/db/data.mdb" "$T/data.mdb.good"
head -c 4096 /dev/urandom >"$T/state/db/data.mdb"
report broken -o "$T/broken.md"
if [ "$RRC" -eq 2 ] && grep -q 'cannot open the database' "$T/log/broken.err" &&
	[ ! -e "$T/broken.md" ] && [ ! -s "$T/broken.out" ]; then
	ok "an unreadable store: a clear error, exit 2, nothing written"
else
	not_ok "an unreadable store: a clear error, exit 2, nothing written" \
		"exit $RRC" "$(cat "$T/log/broken.err")"
fi
cp "$T/data.mdb.good" "$T/state/db/data.mdb"

done_testing
