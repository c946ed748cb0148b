#!/bin/bash
# test_cutover_dns.sh - bad resolver answers never advance a cutover phase,
# with the ferry-syncd daemon and three resolvers (a lie, a timeout, a SERVFAIL;
# test_cutover.sh plays the whole cutover, test_cutover_watch.sh the
# watcher module alone).
#
# Three private dnsmasq resolvers answer the old MX; once synced, one
# lies (a third host), one times out, one returns SERVFAIL: the phase
# stays synced and no catch-up pass runs.  One answers new: switching,
# and it stays switching while the others time out, fail or lie, however
# long.  Every resolver new: dual-reception; one lying again holds the
# domain open past quiet_period; all new: closed.  Also: a configuration
# with [cutover] domains but no new_mx is refused, naming file:line.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot dnsmasq "$FERRY_SYNCD" "$FERRYCTL" "$LIB_PYTHON"

DOMAIN=example.test
USER=alice@$DOMAIN
QUIET=4
SLOW=1
if grep -q '__asan_init\|__tsan_init' "$FERRY_SYNCD" 2>/dev/null; then
	SLOW=3
fi

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot "$USER:pass" || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot "$USER:pass" || done_testing
printf 'From: a@example.org\r\nSubject: one\r\nMessage-ID: <dns1@example.org>\r\n\r\nbody\r\n' >"$T/m1.eml"
check "a message in the source" imap_append "$IMAP_PORT_src" "$USER" pass INBOX "$T/m1.eml"

# answer KIND - one resolver's zone: old, new, lie (a third host),
# timeout or servfail
answer() {
	case $1 in
	old) echo "MX $DOMAIN 10 old-mx.$DOMAIN" ;;
	new) echo "MX $DOMAIN 10 mx1.newprovider.test" ;;
	lie) echo "MX $DOMAIN 10 mx.elsewhere.test" ;;
	timeout) echo "TIMEOUT $DOMAIN" ;;
	servfail) echo "SERVFAIL $DOMAIN" ;;
	esac
}
for r in r1 r2 r3; do
	check "resolver $r answers the old MX" start_dns_named "$r" < <(answer old)
done
# set_dns R KIND...
set_dns() {
	while [ $# -ge 2 ]; do
		update_dns_named "$1" < <(answer "$2") || return 1
		shift 2
	done
}

printf '%s pass %s pass\n' "$USER" "$USER" >"$T/accounts"
chmod 600 "$T/accounts"
CONF=$T/mailferry.conf
cat >"$CONF" <<EOF
[global]
state_dir = $T/state
log = stderr
log_level = info
[relay]
hostname = old-mx.$DOMAIN
[syncd]
http =
source = imap://127.0.0.1:$IMAP_PORT_src?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
accounts = $T/accounts
interval = 1h
[cutover]
domains = $DOMAIN
resolvers = 127.0.0.1:$DNS_PORT_r1, 127.0.0.1:$DNS_PORT_r2, 127.0.0.1:$DNS_PORT_r3
new_mx = *.newprovider.test
check_interval = 1s
quiet_period = ${QUIET}s
catchup_interval = 2s
EOF

# A domain without new_mx: refused with the file and line of [cutover].
grep -v '^new_mx' "$CONF" >"$T/bad.conf"
"$FERRY_SYNCD" -t -c "$T/bad.conf" >"$T/bad.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "$T/bad.conf:[0-9]" "$T/bad.out" && grep -qi new_mx "$T/bad.out"; then
	ok "[cutover] domains without new_mx is refused (exit 2, file:line)"
else
	not_ok "[cutover] domains without new_mx is refused (exit 2, file:line)" \
		"exit $rc" "$(cat "$T/bad.out")"
fi

spawn syncd "$FERRY_SYNCD" -d -c "$CONF"
SYNCD_LOG=$T/log/syncd.log

# st PY - a python expression over d (the domain) of ferryctl status --json
st() {
	"$FERRYCTL" -c "$CONF" status --json | "$LIB_PYTHON" -c "
import json, sys
d = json.load(sys.stdin)['domains'][0]
r = dict((x['resolver'], x) for x in d['resolvers'])
def cls(p):
    return r.get('127.0.0.1:%s' % p, {}).get('class')
def asked(p):
    return r.get('127.0.0.1:%s' % p, {}).get('asked_at') or ''
print($1)"
}
# wait_st SECS WANT PY - until st PY prints WANT
wait_st() {
	local i got
	for ((i = 0; i < $1 * 5; i++)); do
		got=$(st "$3" 2>/dev/null)
		[ "$got" = "$2" ] && return 0
		sleep 0.2
	done
	echo "after $1 s: '$got', wanted '$2'" >&2
	"$FERRYCTL" -c "$CONF" status >&2
	return 1
}
# hold SECS WANT PY - st PY prints WANT all the time for SECS
hold() {
	local i got
	for ((i = 0; i < $1 * 2; i++)); do
		got=$(st "$3" 2>&1)
		[ "$got" = "$2" ] || {
			echo "after $((i / 2)) s: '$got', wanted '$2'" >&2
			"$FERRYCTL" -c "$CONF" status >&2
			return 1
		}
		sleep 0.5
	done
}
passes() { grep -c 'pass [0-9]*: starting' "$SYNCD_LOG"; }

check "the first full pass, every resolver old: synced" \
	wait_st $((30 * SLOW)) synced "d['phase']"

nhist=$(st "len(d['history'])")
check "r1 lies (a third host), r2 times out, r3 answers SERVFAIL" \
	set_dns r1 lie r2 timeout r3 servfail
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
npass=$(passes)
check "the watcher classes them unknown, error, error" \
	wait_st $((20 * SLOW)) "unknown error error" \
	"' '.join(str(cls(p)) for p in ($DNS_PORT_r1, $DNS_PORT_r2, $DNS_PORT_r3)) if min(asked(p) for p in ($DNS_PORT_r1, $DNS_PORT_r2, $DNS_PORT_r3)) > '$since' else 'stale'"
check "none of them advances the phase (synced for $((QUIET + 2)) s)" \
	hold $((QUIET + 2)) "synced $nhist" "d['phase'], len(d['history'])"
check_output "and none starts a catch-up pass" "$npass" passes

check "r1 answers new, the others still time out and fail" set_dns r1 new
check "one new answer: switching" wait_st $((10 * SLOW)) switching "d['phase']"
check "a timeout and a SERVFAIL are not new: still switching after $((QUIET + 2)) s" \
	hold $((QUIET + 2)) switching "d['phase']"
check "r3 answers new, r2 lies" set_dns r3 new r2 lie
check "the watcher classes r2 unknown, r3 new" wait_st $((20 * SLOW)) "unknown new" \
	"cls($DNS_PORT_r2), cls($DNS_PORT_r3)"
check "a lie is not new either: still switching" \
	hold 4 "switching unknown" "d['phase'], cls($DNS_PORT_r2)"
check "r2 answers new too" set_dns r2 new
check "every resolver new: dual-reception" wait_st $((10 * SLOW)) dual-reception "d['phase']"
check "r1 lies again" set_dns r1 lie
check "the watcher classes r1 unknown" wait_st $((20 * SLOW)) unknown "cls($DNS_PORT_r1)"
# Not every resolver answers new any more: the domain may step back to
# switching, but it must not close, however long the lie lasts.
check "with one resolver lying the domain stays open past quiet_period" \
	hold $((QUIET + 4)) "True not-yet" \
	"d['phase'] in ('switching', 'dual-reception'), d['verdict']"
# closed needs quiet_period of new answers from r1 after this (a second
# of slack: the history keeps whole seconds)
t_new=$(date -u -d "@$(($(date +%s) + QUIET - 1))" +%Y-%m-%dT%H:%M:%SZ)
check "r1 answers new again" set_dns r1 new
check "then quiet_period later: closed, safe-to-retire" \
	wait_st $((QUIET + 15 * SLOW)) "closed safe-to-retire" "d['phase'], d['verdict']"
check_output "closed only quiet_period after r1's last new answer, and once" "True 1" \
	st "d['history'][-1]['to'] == 'closed' and d['history'][-1]['at'] >= '$t_new', sum(1 for h in d['history'] if h['to'] == 'closed')"
diag "history:" "$(st "'\\n'.join('%s %s -> %s: %s' % (h['at'], h['from'], h['to'], h['why']) for h in d['history'])")"

done_testing
