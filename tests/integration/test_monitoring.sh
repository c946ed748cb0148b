#!/bin/bash
# test_monitoring.sh - contrib/monitoring/ against live daemons: every
# metric name the Grafana dashboard and the Prometheus alerting rules use
# appears in the /metrics output of a running ferry-relay
# (mailferry_relay_*, with a message queued) or a running ferry-syncd (mailferry_syncd_*, after
# a pass, with a cutover domain); the dashboard is valid JSON whose
# panels all query something; promtool check rules and promtool test
# rules (the rules' unit tests) pass when promtool is installed.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm dnsmasq curl swaks "$FERRY_RELAY" "$FERRY_SYNCD" "$LIB_PYTHON"

MON=$top_srcdir/contrib/monitoring
DASH=$MON/mailferry-dashboard.json
RULES=$MON/mailferry-alerts.yml
RULES_TEST=$MON/mailferry-alerts.test.yml
DOMAIN=example.test

# --- the relay ----------------------------------------------------------------------------
RPORT=$(free_port) && RHTTP=$(free_port) && UPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
mkdir -p "$T/rstate"
cat >"$T/relay.conf" <<EOF
[global]
state_dir = $T/rstate
log = stderr
[relay]
listen = 127.0.0.1:$RPORT
hostname = old-mx.$DOMAIN
domains = $DOMAIN
[forward]
upstream = 127.0.0.1:$UPORT
tls = none
[checks]
spf = off
dkim = off
[control]
socket = $T/rstate/control.sock
http = 127.0.0.1:$RHTTP
EOF
spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
check "the relay listens" wait_port "$RHTTP" 20
# one message in (the upstream is down: it stays queued, deferred)
check "the relay accepts a message" swaks --server "127.0.0.1:$RPORT" \
	--helo client.test --from a@example.org --to "alice@$DOMAIN" \
	--header "Subject: monitoring" --body "body"

# --- ferry-syncd after a pass, with a cutover domain --------------------------------------
DOVECOT_NAME=src check "source Dovecot starts" start_dovecot "alice@$DOMAIN:pass" || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot "alice@$DOMAIN:pass" || done_testing
check "the resolver answers the old MX" start_dns_named r1 <<<"MX $DOMAIN 10 old-mx.$DOMAIN"
printf 'From: a@example.org\r\nSubject: one\r\nMessage-ID: <mon1@example.org>\r\n\r\nbody\r\n' >"$T/m1.eml"
check "a message in the source" imap_append "$IMAP_PORT_src" "alice@$DOMAIN" pass INBOX "$T/m1.eml"
printf 'alice@%s pass alice@%s pass\n' "$DOMAIN" "$DOMAIN" >"$T/accounts"
chmod 600 "$T/accounts"
SHTTP=$(free_port)
cat >"$T/syncd.conf" <<EOF
[global]
state_dir = $T/sstate
log = stderr
[relay]
hostname = old-mx.$DOMAIN
[syncd]
source = imap://127.0.0.1:$IMAP_PORT_src?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
accounts = $T/accounts
interval = 1h
http = 127.0.0.1:$SHTTP
[cutover]
domains = $DOMAIN
resolvers = 127.0.0.1:$DNS_PORT_r1
new_mx = *.newprovider.test
check_interval = 1s
EOF
spawn syncd "$FERRY_SYNCD" -d -c "$T/syncd.conf"
passed() { grep -q "pass 1: done" "$T/log/syncd.log"; }
waited() {
	local i
	for ((i = 0; i < 300; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}
check "ferry-syncd's first pass ends" waited passed

check "GET /metrics of the relay" curl -sf -o "$T/relay.prom" "http://127.0.0.1:$RHTTP/metrics"
check "GET /metrics of ferry-syncd" curl -sf -o "$T/syncd.prom" "http://127.0.0.1:$SHTTP/metrics"

# --- every name used is served ----------------------------------------------------------------
"$LIB_PYTHON" - "$DASH" "$RULES" "$T/relay.prom" "$T/syncd.prom" >"$T/names.out" 2>&1 <<'PY'
import json, re, sys
dash_path, rules_path, relay_path, syncd_path = sys.argv[1:5]
name_re = re.compile(r"\bmailferry_[a-z0-9_]+")

def served(path):
    names = set()
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names

relay, syncd = served(relay_path), served(syncd_path)
dash = json.load(open(dash_path))
exprs, bad = [], []

def walk(o):
    if isinstance(o, dict):
        if "targets" in o:
            for t in o["targets"]:
                if not t.get("expr"):
                    bad.append("panel %r: a target without expr" % o.get("title"))
                exprs.append(t.get("expr", ""))
        if o.get("type") not in (None, "row") and "targets" not in o and "title" in o and "gridPos" in o:
            bad.append("panel %r queries nothing" % o.get("title"))
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)

walk(dash["panels"])
for v in dash.get("templating", {}).get("list", []):
    exprs.append(v.get("query", ""))
used = set(n for e in exprs for n in name_re.findall(e))
rules_used = set(name_re.findall(open(rules_path).read()))
print("dashboard: %d queries, %d names; rules: %d names" % (len(exprs), len(used), len(rules_used)))
for n in sorted(used | rules_used):
    where = relay if n.startswith("mailferry_relay_") else syncd
    if n not in where:
        bad.append("%s is used but not served by %s" % (
            n, "the relay" if where is relay else "ferry-syncd"))
for b in bad:
    print(b)
sys.exit(1 if bad or not used or not rules_used else 0)
PY
if [ $? -eq 0 ]; then
	ok "every metric the dashboard and the rules use is served ($(head -1 "$T/names.out"))"
else
	not_ok "every metric the dashboard and the rules use is served" "$(cat "$T/names.out")"
fi

if command -v promtool >/dev/null 2>&1; then
	check "promtool check rules" promtool check rules "$RULES"
	check "promtool test rules (the alerts' unit tests)" promtool test rules "$RULES_TEST"
	check "promtool check metrics: the relay's exposition" \
		sh -c 'promtool check metrics <"$1"' sh "$T/relay.prom"
	check "promtool check metrics: ferry-syncd's exposition" \
		sh -c 'promtool check metrics <"$1"' sh "$T/syncd.prom"
else
	skip "promtool check rules" "promtool not installed"
	skip "promtool test rules (the alerts' unit tests)" "promtool not installed"
	skip "promtool check metrics: the relay's exposition" "promtool not installed"
	skip "promtool check metrics: ferry-syncd's exposition" "promtool not installed"
fi

done_testing
