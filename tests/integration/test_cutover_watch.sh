#!/bin/bash
# test_cutover_watch.sh - syncd/cutover.c's MX watcher against a real DNS
# server (dnsmasq, lib.sh start_dns), driven through cutover_probe: old
# answers -> synced; the switch -> a catch-up request at once, then
# dual-reception (one resolver); the quiet period -> closed; a lying
# resolver (a third host) and a timeout never advance a phase; every step
# read back with "ferryctl status --json" from the store.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq
P=$top_builddir/tests/integration/cutover_probe
[ -x "$P" ] || { echo "Bail out! $P not built"; exit 1; }

plan 10

start_dns <<REC || { echo "Bail out! dnsmasq does not start"; exit 1; }
MX example.test 10 old-mx.example.test
REC
STATE=$T/state
mkdir -p "$STATE"
CONF=$T/mailferry.conf
cat >"$CONF" <<CONFEOF
[global]
state_dir = $STATE
[relay]
hostname = old-mx.example.test
[cutover]
domains = example.test
resolvers = 127.0.0.1:$DNS_PORT
new_mx = *.new.example.test
check_interval = 1s
quiet_period = 4s
catchup_interval = 2s
CONFEOF

probe() { timeout -k 5 30 "$P" -c "$CONF" "$@"; }
# field PY - a python expression over dom (the first domain) of status
field() {
	"$FERRYCTL" -c "$CONF" status --json | "$LIB_PYTHON" -c "
import json, sys
dom = json.load(sys.stdin)['domains'][0]
print($1)"
}

check "the watcher runs against dnsmasq" probe 3 --pass
check_output "old answers after the full pass: synced" "synced" field "dom['phase']"
check_output "the resolver's answer is kept with its class" \
	"old old-mx.example.test" field "dom['resolvers'][0]['class'] + ' ' + dom['resolvers'][0]['mx'][0]"

update_dns <<REC
MX example.test 10 mx1.new.example.test
REC
check_output "the first new answer asks for a catch-up pass, once" "1" \
	bash -c "timeout -k 5 30 '$P' -c '$CONF' 3 | grep -c '^REQUEST .*answers new for example.test'"
check_output "every resolver new: dual-reception" "dual-reception" field "dom['phase']"
check "a clean pass, then the quiet period: closed" probe 6 --pass
check_output "the verdict is safe-to-retire" "safe-to-retire closed" \
	field "dom['verdict'] + ' ' + dom['phase']"
check_output "the history holds every phase in order" \
	"presync>synced synced>switching switching>dual-reception dual-reception>closed" \
	field "' '.join(h['from'] + '>' + h['to'] for h in dom['history'])"

update_dns <<REC
MX example.test 10 mx.evil.example
REC
probe 3 >/dev/null 2>&1
check_output "a lying resolver (a third host) is unknown and never closes" \
	"unknown not-yet" field "dom['resolvers'][0]['class'] + ' ' + dom['verdict']"
update_dns <<REC
TIMEOUT example.test
REC
probe 3 >/dev/null 2>&1
check_output "a timeout is an error, never a switch" "error" \
	field "dom['resolvers'][0]['class']"

done_testing
