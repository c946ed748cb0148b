#!/bin/bash
# test_status_page.sh - the status page on GET / of the relay's control
# HTTP listener, loaded in a real headless Chromium against a running
# ferry-relay and ferry-syncd with data:
#   - two Dovecots (the old and the new host) with two accounts, one of
#     which cannot log in at the destination (a failure to show);
#   - a dnsmasq answering the [cutover] domain's MX (the old host);
#   - a relay whose upstream is down, holding three deferred messages,
#     the oldest from a sender with HTML-special characters.
# The page's DOM (chromium --dump-dom) must show the numbers of
# `ferryctl status|stats|queue|drain|sync --json` of the same moment; a
# screenshot is kept next to this test's log.  Then the listener's
# authentication: a non-loopback [control] http without credentials is
# refused before anything binds, and with [control] auth_token_file /
# auth_user + auth_password_file every path answers 401 without them
# and 200 with them.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm dnsmasq dig swaks smtp-sink curl \
	"$FERRY_RELAY" "$FERRY_SYNCD" "$FERRYCTL"

DOMAIN=example.test
SHOT=$top_builddir/tests/integration/test_status_page.png
rm -f "$SHOT"
STATE=$T/state
CONF=$T/mailferry.conf
mkdir -p "$STATE"

DOVECOT_NAME=src check "source Dovecot starts" \
	start_dovecot "alice@$DOMAIN:pass" "carol@$DOMAIN:pass" || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" \
	start_dovecot "alice@$DOMAIN:pass" "carol@$DOMAIN:pass" || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
msg() { # msg N - a message file
	printf 'From: s@example.org\r\nTo: alice@%s\r\nSubject: page %s\r\nMessage-ID: <page%s@example.org>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\nbody %s %s\r\n' \
		"$DOMAIN" "$1" "$1" "$1" "$(head -c 2000 /dev/zero | tr '\0' x)" >"$T/m$1.eml"
}
fill() {
	local i
	for i in 1 2 3 4 5; do
		msg "$i"
		imap_append "$SRC" "alice@$DOMAIN" pass INBOX "$T/m$i.eml" || return 1
	done
	imap_create "$SRC" "alice@$DOMAIN" pass Archive || return 1
	for i in 6 7; do
		msg "$i"
		imap_append "$SRC" "alice@$DOMAIN" pass Archive "$T/m$i.eml" || return 1
	done
	msg 8
	imap_append "$SRC" "carol@$DOMAIN" pass INBOX "$T/m8.eml"
}
check "seven messages for alice and one for carol on the source" fill ||
	done_testing

# carol's destination password is wrong: her account fails.
printf 'alice@%s pass alice@%s pass\ncarol@%s pass carol@%s wrong\n' \
	"$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" >"$T/accounts"
chmod 600 "$T/accounts"
check "dnsmasq answers the old MX" start_dns <<EOF
MX $DOMAIN 10 mx.old.test
EOF

RPORT=$(free_port) && HPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
# The upstream: smtp-sink's port with smtp-sink stopped (mail stays queued).
start_smtp_sink && stop_smtp_sink || {
	echo "Bail out! smtp-sink does not start"
	exit 1
}
UPORT=$SINK_PORT
write_conf() { # write_conf FILE HTTP [EXTRA CONTROL LINES...]
	local f=$1 http=$2
	shift 2
	cat >"$f" <<EOF
[global]
state_dir = $STATE
log = stderr
[relay]
listen = 127.0.0.1:$RPORT
hostname = mx.old.test
domains = $DOMAIN
[forward]
upstream = 127.0.0.1:$UPORT
tls = none
connect_timeout = 5s
retry_initial = 10m
retry_max = 30m
[checks]
; nothing may leave loopback
spf = off
dkim = off
[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/accounts
interval = 1h
[cutover]
domains = $DOMAIN
resolvers = 127.0.0.1:$DNS_PORT
new_mx = mx.new.test
old_mx = mx.old.test
check_interval = 1s
catchup_interval = 1h
quiet_period = 1h
[control]
socket = $STATE/control.sock
http = $http
EOF
	printf '%s\n' "$@" >>"$f"
}
write_conf "$CONF" "127.0.0.1:$HPORT"
ctl() { "$FERRYCTL" -c "$CONF" "$@"; }

# wait_for SECS CMD... - retry CMD every 0.2 s until it succeeds
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"$@"
}

# --- the data ------------------------------------------------------------------

spawn relay "$FERRY_RELAY" -d -c "$CONF"
RELAY_PID=$SPAWN_PID
check "the relay starts" wait_port "$RPORT" 10 || done_testing
check "the control listener answers" wait_port "$HPORT" 10
send() { # send FROM N
	swaks --server "127.0.0.1:$RPORT" --helo client.test --from "$1" \
		--to "alice@$DOMAIN" --header "Subject: queued $2" \
		--body "Queued message $2." >"$T/swaks.$2.log" 2>&1
}
queued3() {
	send "o'brien&co@example.org" 1 && sleep 1.1 &&
		send bob@example.org 2 && send bob@example.org 3
}
check "three messages accepted (the oldest from o'brien&co@example.org)" queued3
all_deferred() {
	ctl --json queue | "$LIB_PYTHON" -c '
import json, sys
ms = json.load(sys.stdin)["messages"]
sys.exit(0 if len(ms) == 3 and all(m["state"] == "deferred" for m in ms) else 1)'
}
check "the three wait deferred (the upstream is down)" wait_for 30 all_deferred

spawn syncd "$FERRY_SYNCD" -d -c "$CONF"
SYNCD_PID=$SPAWN_PID
pass_done() { grep -q "pass 1: done" "$T/log/syncd.log"; }
check "ferry-syncd's first pass is done" wait_for 60 pass_done
answered() {
	ctl --json status | "$LIB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)["domains"][0]
sys.exit(0 if d["resolvers"] and d["resolvers"][0]["mx"] else 1)'
}
check "the MX watcher has recorded the resolver's answer" wait_for 30 answered

# --- the page in Chromium ------------------------------------------------------

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
chrome() { # chrome ARGS... - headless Chromium with a private profile
	mkdir -p "$T/chromium/home"
	HOME=$T/chromium/home timeout 120 "$CHROMIUM" --headless --no-sandbox \
		--disable-gpu --disable-dev-shm-usage --no-first-run \
		--disable-extensions --user-data-dir="$T/chromium/profile" \
		--hide-scrollbars "$@"
}
have_chromium=0
if [ -z "$CHROMIUM" ]; then
	chromium_why="chromium is not installed (Debian package chromium)"
elif printf '<p id="x">ok</p>' >"$T/probe.html" &&
	chrome --dump-dom "file://$T/probe.html" 2>"$T/chromium-probe.err" |
	grep -q '<p id="x">ok</p>'; then
	have_chromium=1
else
	chromium_why="chromium does not start: $(tail -1 "$T/chromium-probe.err")"
fi

URL=http://127.0.0.1:$HPORT/
check "curl: GET / answers 200 text/html" eval \
	"curl -sf -D '$T/page.hdr' -o '$T/page.raw' '$URL' && grep -qi '^content-type: text/html' '$T/page.hdr'"
self_contained() {
	# No external asset: nothing to load, no link away but our own paths.
	! grep -Eio '<(link|img|iframe|object|embed)\b|\bsrc=|url\(|@import' "$T/page.raw" &&
		! grep -Eo 'href="[^"]*"' "$T/page.raw" | grep -v '^href="/' &&
		grep -qi "^content-security-policy: default-src 'none'" "$T/page.hdr"
}
check "the page is self-contained (no external asset, a CSP forbids them)" self_contained
check "the envelope sender is HTML-escaped in the page source" \
	grep -q "o&#39;brien&amp;co@example.org" "$T/page.raw"

if [ "$have_chromium" = 1 ]; then
	# The documents first, then the page: nothing in them changes in
	# between (the queue waits 10 min, syncd's next pass is 1 h away).
	for doc in status stats queue drain sync; do
		ctl --json "$doc" >"$T/$doc.json"
	done
	check "chromium --dump-dom loads the page" eval \
		"chrome --dump-dom '$URL' >'$T/dom.html' 2>'$T/chromium.err' && grep -q 'id=\"sync-accounts\"' '$T/dom.html'"
	cat >"$T/dom.py" <<'PY'
import html.parser, json, sys

T = sys.argv[1]
class Dom(html.parser.HTMLParser):
    """Elements with their attributes and text, in document order."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.els, self.stack = [], []
    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.els.append(el)
        if tag not in ("br", "input", "meta"):
            self.stack.append(el)
    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break
    def handle_data(self, data):
        for el in self.stack:
            el["text"] += data
d = Dom()
d.feed(open(T + "/dom.html", encoding="utf-8").read())
def by_id(i):
    m = [e for e in d.els if e["attrs"].get("id") == i]
    assert len(m) == 1, "id %s: %d elements" % (i, len(m))
    return m[0]
def by_class(c):
    return [e for e in d.els if c in e["attrs"].get("class", "").split()]
def load(n):
    return json.load(open("%s/%s.json" % (T, n)))
problems = []
def same(what, page, doc):
    if str(page) != str(doc):
        problems.append("%s: page %r, ferryctl %r" % (what, page, doc))

what = sys.argv[2]
if what == "cutover":
    doms = load("status")["domains"]
    divs = by_class("domain")
    same("domains", len(divs), len(doms))
    for div, dom in zip(divs, doms):
        a = div["attrs"]
        same("domain", a["data-domain"], dom["domain"])
        same("phase", a["data-phase"], dom["phase"])
        same("verdict", a["data-verdict"], dom["verdict"])
    uls = by_class("outstanding")
    for ul, dom in zip(uls, doms):
        same("outstanding count", ul["attrs"]["data-count"], len(dom["outstanding"]))
    lis = []
    cur = None
    for e in d.els:
        if "outstanding" in e["attrs"].get("class", "").split():
            cur = []
            lis.append(cur)
        elif e["tag"] == "li" and cur is not None:
            cur.append(e["text"])
        elif e["tag"] == "table":
            cur = None
    # The items name ages ("oldest 6 s", "4 s ago") that move on between
    # the two reads: compare them without the durations' numbers.
    import re
    ages = re.compile(r"\b\d+(\.\d+)? ?(s|m|min|h|d|seconds?|minutes?|hours?|days?)\b|\b\d+[dhm]\d+[hms]\b")
    def words(items):
        return [ages.sub("<age>", i) for i in items]
    for got, dom in zip(lis, doms):
        same("outstanding items", words(got), words(dom["outstanding"]))
    rows = by_class("resolver")
    want = [r for dom in doms for r in dom["resolvers"]]
    same("resolver rows", len(rows), len(want))
    for row, r in zip(rows, want):
        a = row["attrs"]
        same("resolver", a["data-resolver"], r["resolver"])
        same("class", a["data-class"], r["class"])
        same("mx", a["data-mx"], " ".join(r["mx"]))
    print("%d domain(s), %d resolver answer(s): %s" % (len(doms), len(want),
          "; ".join("%s %s %s" % (x["domain"], x["phase"], x["verdict"]) for x in doms)))
elif what == "queue":
    q = load("stats")["queue"]
    for k in ("pending", "deferred", "held", "total", "bytes"):
        same("queue " + k, by_id("queue-" + k)["attrs"]["data-value"], q[k])
    ms = load("queue")["messages"]
    oldest = min(ms, key=lambda m: (m["arrived"], m["id"]))
    t = by_id("queue-oldest")
    same("oldest id", t["attrs"]["data-id"], oldest["id"])
    if "o'brien&co@example.org" not in t["text"]:
        problems.append("oldest sender not shown as text: %r" % t["text"])
    print("queue: %s, oldest %s" % (q, oldest["id"]))
elif what == "arrivals":
    dr = load("drain")["drain"]
    bars = [e for e in d.els if e["tag"] == "rect" and "bar" in e["attrs"].get("class", "")]
    same("bars", len(bars), 72)
    same("hourly", [int(b["attrs"]["data-count"]) for b in bars], dr["hourly"])
    same("total", by_id("arrivals-total")["attrs"]["data-value"], dr["total"])
    svg = by_id("arrivals-chart")
    same("chart is inline svg", svg["tag"], "svg")
    print("arrivals: total %d, last hours %s" % (dr["total"], dr["hourly"][-3:]))
elif what == "sync":
    s = load("sync")
    for k in ("accounts_done", "accounts_total", "folders_done", "folders_total",
              "messages_done", "messages_total", "copied", "duplicates",
              "failed", "bytes"):
        same("sync " + k, by_id("sync-" + k.replace("_", "_"))["attrs"]["data-value"], s[k])
    rows = by_class("account")
    same("account rows", len(rows), len(s["accounts"]))
    for row, a in zip(rows, s["accounts"]):
        r = row["attrs"]
        same("user", r["data-user"], a["user"])
        same("state", r["data-state"], a["state"])
        for k in ("folders_done", "folders_total", "copied", "failed",
                  "messages_done", "messages_total", "bytes"):
            same(a["user"] + " " + k, r["data-" + k.replace("_", "-")], a[k])
        if a["error"] and a["error"] not in row["text"]:
            problems.append("%s: error %r not shown" % (a["user"], a["error"]))
    print("sync: " + "; ".join("%s %s %d/%d copied %d failed %d" % (
        a["user"], a["state"], a["messages_done"], a["messages_total"],
        a["copied"], a["failed"]) for a in s["accounts"]))
if problems:
    print("\n".join(problems))
    sys.exit(1)
PY
	for part in cutover queue arrivals sync; do
		check "page vs ferryctl --json: $part" "$LIB_PYTHON" "$T/dom.py" "$T" "$part"
		diag "$(tail -1 "$CHECK_LOG")"
	done
	sync_sane() { # the data is what this test made, not just consistent
		"$LIB_PYTHON" - "$T" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/sync.json"))
acc = {a["user"]: a for a in s["accounts"]}
a, c = acc["alice@example.test"], acc["carol@example.test"]
assert a["state"] == "done" and a["copied"] == 7 and a["messages_total"] == 7, a
assert a["messages_done"] == 7 and a["bytes"] > 7 * 2000, a
assert c["state"] == "failed" and c["error"], c
q = json.load(open(sys.argv[1] + "/stats.json"))["queue"]
assert q["deferred"] == 3 and q["total"] == 3, q
d = json.load(open(sys.argv[1] + "/drain.json"))["drain"]
assert d["total"] >= 3, d
st = json.load(open(sys.argv[1] + "/status.json"))["domains"][0]
assert st["verdict"] == "not-yet" and st["outstanding"], st
assert st["resolvers"][0]["class"] == "old", st
PY
	}
	check "the documents hold this test's data (7 copied, 1 failed account, 3 deferred)" sync_sane
	check "chromium --screenshot writes a PNG" eval \
		"(cd '$T' && chrome --screenshot='$SHOT' --window-size=1280,2000 '$URL' >'$T/shot.log' 2>&1) && [ \"\$(head -c 4 '$SHOT' | tail -c 3)\" = PNG ]"
	diag "screenshot: $SHOT"
else
	for part in "chromium --dump-dom loads the page" \
		"page vs ferryctl --json: cutover" "page vs ferryctl --json: queue" \
		"page vs ferryctl --json: arrivals" "page vs ferryctl --json: sync" \
		"the documents hold this test's data" \
		"chromium --screenshot writes a PNG"; do
		skip "$part" "$chromium_why"
	done
fi
stop_pid "$SYNCD_PID"
stop_pid "$RELAY_PID"

# --- authentication ------------------------------------------------------------

OPEN=$T/open.conf
write_conf "$OPEN" "0.0.0.0:$HPORT"
line=$(grep -n '^http = ' "$OPEN" | cut -d: -f1)
check_output "-t refuses a non-loopback [control] http without credentials (exit 2)" 2 \
	eval "'$FERRY_RELAY' -t -c '$OPEN' >'$T/open.err' 2>&1; echo \$?"
check "... naming the file, the line and the key" \
	grep -q "open.conf:$line: \[control\] http: 0.0.0.0 is not a loopback address" "$T/open.err"
refused_before_bind() {
	"$FERRY_RELAY" -d -c "$OPEN" >"$T/open.run" 2>&1
	local rc=$?
	[ "$rc" -eq 2 ] && ! port_open "$HPORT" && ! port_open "$RPORT"
}
check "ferry-relay refuses to start with it, before binding anything" refused_before_bind
write_conf "$T/half.conf" "127.0.0.1:$HPORT" "auth_user = admin"
check_output "auth_user without auth_password_file is a config error (exit 2)" 2 \
	eval "'$FERRY_RELAY' -t -c '$T/half.conf' >/dev/null 2>&1; echo \$?"

TOKEN=tok-$RANDOM$RANDOM-secret
PASSWORD=pw-$RANDOM$RANDOM-secret
printf '%s\n' "$TOKEN" >"$T/token"
printf '%s\n' "$PASSWORD" >"$T/password"
chmod 600 "$T/token" "$T/password"
write_conf "$T/world.conf" "127.0.0.1:$HPORT" "auth_token_file = $T/token"
chmod 644 "$T/token"
world_refused() {
	! "$FERRY_RELAY" -d -c "$T/world.conf" >"$T/world.err" 2>&1 &&
		grep -q "auth_token_file $T/token: readable or writable by everyone" "$T/world.err"
}
check "a token file everyone can read is refused" world_refused
chmod 600 "$T/token"

AUTH=$T/auth.conf
write_conf "$AUTH" "0.0.0.0:$HPORT" "auth_token_file = $T/token" \
	"auth_user = admin" "auth_password_file = $T/password"
check "a non-loopback [control] http with credentials passes -t" \
	"$FERRY_RELAY" -t -c "$AUTH"
# Run it on loopback all the same: nothing in a test listens beyond it.
write_conf "$AUTH" "127.0.0.1:$HPORT" "auth_token_file = $T/token" \
	"auth_user = admin" "auth_password_file = $T/password"
spawn relay-auth "$FERRY_RELAY" -d -c "$AUTH"
check "the relay starts with authentication" wait_port "$HPORT" 10
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for path in / /metrics /status /cutover; do
	check_output "$path without credentials: 401" 401 code "http://127.0.0.1:$HPORT$path"
done
check_output "a wrong bearer token: 401" 401 \
	code -H "Authorization: Bearer $TOKEN-x" "http://127.0.0.1:$HPORT/metrics"
check_output "a wrong password: 401" 401 \
	code -u "admin:$PASSWORD-x" "http://127.0.0.1:$HPORT/"
check_output "the bearer token: 200 on /metrics" 200 \
	code -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HPORT/metrics"
check_output "basic auth: 200 on /" 200 \
	code -u "admin:$PASSWORD" "http://127.0.0.1:$HPORT/"
check "401 asks for basic auth (WWW-Authenticate)" eval \
	"curl -s -D - -o /dev/null 'http://127.0.0.1:$HPORT/' | grep -qi '^www-authenticate: basic realm='"
no_secret_logged() {
	! grep -qF -e "$TOKEN" -e "$PASSWORD" "$T/log/relay-auth.log" &&
		grep -q "wrong credentials" "$T/log/relay-auth.log"
}
check "refusals are logged, the secrets never" no_secret_logged

done_testing
