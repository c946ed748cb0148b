#!/bin/bash
# demo.sh - a whole mailferry cutover in a minute or two, on loopback only.
#
# usage: sudo contrib/demo.sh [FERRY_RELAY [FERRYCTL [FERRY_SYNCD]]]
#        (default: relay/ferry-relay, ctl/ferryctl and syncd/ferry-syncd
#        under the current directory, i.e. run it from the build directory;
#        root because Postfix's master runs only as root)
#
# The cast, every one a private instance on 127.0.0.1 in a temporary
# directory (tests/integration/lib.sh starts and stops them; nothing
# touches the system's own services):
#   old host   Dovecot A (IMAP, 300 messages of history in 20 folders),
#              Postfix A (its local delivery, LMTP into Dovecot A) and
#              ferry-relay on the old MX, forwarding to the new MX and
#              copying every message into Postfix A (dual reception);
#   new host   Postfix B (the new provider's MX, LMTP into Dovecot B) and
#              Dovecot B;
#   DNS        two dnsmasq resolvers serving the MX of example.com;
#   senders    swaks, each message to the MX its resolver answers.
# ferry-syncd (daemon) copies the history from A to B and watches the MX
# through both resolvers.  The demo flips the MX on one resolver, then on
# the other, stops the new MX for a moment, sends a straggler to the old
# MX, and prints every phase as it changes (presync -> synced -> switching
# -> dual-reception -> closed), "ferryctl status" before, during and
# after, and the final verdict.  The times are the demo configuration's
# (conf/mailferry.conf.example) scaled down: check_interval 2s,
# catchup_interval 5s, quiet_period 30s: about a minute in all.  Ctrl-C
# stops everything.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY=${1:-relay/ferry-relay}
CTL=${2:-ctl/ferryctl}
SYNCD=${3:-syncd/ferry-syncd}
EXAMPLE=$here/../conf/mailferry.conf.example

die() {
	echo "demo: $*" >&2
	exit 1
}
for p in "$RELAY" "$CTL" "$SYNCD"; do
	[ -x "$p" ] || die "$p not found: build first (./configure && make), or give the paths: $0 RELAY FERRYCTL SYNCD"
done
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
RELAY=$(abspath "$RELAY") CTL=$(abspath "$CTL") SYNCD=$(abspath "$SYNCD")
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
for c in dovecot postfix dnsmasq dig swaks python3; do
	command -v "$c" >/dev/null ||
		die "$c is missing (sudo contrib/install-deps.sh installs it)"
done
[ -x /usr/lib/dovecot/lmtp ] || die "Dovecot's LMTP is missing (dovecot-lmtpd; sudo contrib/install-deps.sh)"
[ -f "$EXAMPLE" ] || die "$EXAMPLE not found"
# Postfix's master runs only as root (the private instances drop to the
# postfix user themselves).
[ "$(id -u)" -eq 0 ] || die "the private Postfix instances need root: sudo $0 $*"

top_srcdir=$here/..
top_builddir=$(pwd)
export top_srcdir top_builddir
# lib.sh: $T (removed on exit, also on Ctrl-C), spawn, start_dovecot,
# start_postfix, start_dns_named/update_dns_named, free_port.
. "$top_srcdir/tests/integration/lib.sh"

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' Y=$'\e[33m' N=$'\e[0m'
else
	B= D= G= Y= N=
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
show() {
	printf '%s$ %s%s\n' "$D" "${*/#$CTL/ferryctl}" "$N"
	"$@" 2>&1 | sed 's/^/    /'
}

DOMAIN=example.com
OLD_MX=old-mx.example.com
NEW_MX=mx1.newprovider.example
STATE=$T/state
CONF=$T/mailferry.conf
mkdir -p "$STATE"

# --- the cast ---------------------------------------------------------------------

step "The cast: old host, new host, two resolvers (all on 127.0.0.1)"
DOVECOT_NAME=A start_dovecot "alice@$DOMAIN:old-pw" "bob@$DOMAIN:old-pw" >/dev/null || die "Dovecot A"
DOVECOT_NAME=B start_dovecot "alice@$DOMAIN:new-pw" "bob@$DOMAIN:new-pw" >/dev/null || die "Dovecot B"
POSTFIX_DOMAINS=$DOMAIN start_postfix A "lmtp:inet:127.0.0.1:$LMTP_PORT_A" >/dev/null || die "Postfix A"
POSTFIX_DOMAINS=$DOMAIN start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B" >/dev/null || die "Postfix B"
zone() { # zone old|new
	local mx=$OLD_MX
	[ "$1" = new ] && mx=$NEW_MX
	printf 'MX %s 10 %s\n' "$DOMAIN" "$mx"
}
start_dns_named r1 < <(zone old) || die "dnsmasq r1"
start_dns_named r2 < <(zone old) || die "dnsmasq r2"
for u in alice bob; do
	"$LIB_PYTHON" "$top_srcdir/bench/gen_mailbox.py" -q --seed "${#u}" \
		--start $((${#u} * 1000)) --count 150 --scale 0.1 \
		--maildir "$T/dovecot/A/mail/$u@$DOMAIN/Maildir" || die "gen_mailbox"
done
[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/A/mail"
for u in alice bob; do doveadm_cmd A force-resync -u "$u@$DOMAIN" '*' || die "doveadm"; done
RELAY_PORT=$(free_port)
HTTP_PORT=$(free_port)
SYNCD_HTTP_PORT=$(free_port)
cat <<EOF
    old host   Dovecot A     imap 127.0.0.1:$IMAP_PORT_A   alice and bob, 150 messages each in 20 folders
               Postfix A     smtp 127.0.0.1:$POSTFIX_PORT_A   local delivery (LMTP into Dovecot A)
               ferry-relay   smtp 127.0.0.1:$RELAY_PORT   the old MX $OLD_MX
    new host   Postfix B     smtp 127.0.0.1:$POSTFIX_PORT_B   the new MX $NEW_MX (LMTP into Dovecot B)
               Dovecot B     imap 127.0.0.1:$IMAP_PORT_B
    resolvers  r1 127.0.0.1:$DNS_PORT_r1   r2 127.0.0.1:$DNS_PORT_r2   both answer MX $OLD_MX
    metrics    relay http://127.0.0.1:$HTTP_PORT/metrics   ferry-syncd http://127.0.0.1:$SYNCD_HTTP_PORT/metrics
EOF

printf 'alice@%s old-pw alice@%s new-pw\nbob@%s old-pw bob@%s new-pw\n' \
	"$DOMAIN" "$DOMAIN" "$DOMAIN" "$DOMAIN" >"$T/accounts"
chmod 600 "$T/accounts"
# The demo configuration with this run's ports and paths, and the
# cutover's times scaled down so it fits in two minutes.
sed -e "s|^state_dir = .*|state_dir = $STATE|" \
	-e "s|^listen = .*|listen = 127.0.0.1:$RELAY_PORT|" \
	-e "s|^hostname = .*|hostname = $OLD_MX|" \
	-e "s|^domains = example.com|domains = $DOMAIN|" \
	-e "s|^upstream = .*|upstream = 127.0.0.1:$POSTFIX_PORT_B|" \
	-e "s|^copy_to = .*|copy_to = 127.0.0.1:$POSTFIX_PORT_A|" \
	-e "s|^retry_initial = .*|retry_initial = 2s|" \
	-e "s|^retry_max = .*|retry_max = 4s|" \
	-e "s|^connect_timeout = .*|connect_timeout = 5s|" \
	-e "s|^spf = .*|spf = off|" -e "s|^dkim = .*|dkim = off|" \
	-e "s|^source = .*|source = imap://127.0.0.1:$IMAP_PORT_A?tls=none|" \
	-e "s|^destination = .*|destination = imap://127.0.0.1:$IMAP_PORT_B?tls=none|" \
	-e "s|^accounts = .*|accounts = $T/accounts|" \
	-e "s|^interval = .*|interval = 1h|" \
	-e "s|^log_level = .*|log_level = info|" \
	-e "/^\[cutover\]/,/^\[/{
s|^domains =.*|domains = $DOMAIN|
s|^resolvers =.*|resolvers = 127.0.0.1:$DNS_PORT_r1, 127.0.0.1:$DNS_PORT_r2|
s|^new_mx =.*|new_mx = *.newprovider.example|
s|^old_mx =.*|old_mx = $OLD_MX|
s|^check_interval = .*|check_interval = 2s|
s|^quiet_period = .*|quiet_period = 30s|
s|^catchup_interval = .*|catchup_interval = 5s|
}" \
	-e "/^\[control\]/,/^\[/s|^http = .*|http = 127.0.0.1:$HTTP_PORT|" \
	-e "/^\[syncd\]/,/^\[/s|^http = .*|http = 127.0.0.1:$SYNCD_HTTP_PORT|" \
	"$EXAMPLE" >"$CONF"
say "configuration: $CONF (conf/mailferry.conf.example, times scaled down)"

# --- helpers -------------------------------------------------------------------------

SHOWN=0
# phases - print the phase changes not printed yet (from the history)
phases() {
	local out
	out=$("$CTL" -c "$CONF" status --json 2>/dev/null | "$LIB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)["domains"][0]
h = d["history"]
for e in h[int(sys.argv[1]):]:
    print("%s  %s -> %s: %s" % (e["at"], e["from"] or "(start)", e["to"], e["why"]))
print("#%d %s %s" % (len(h), d["phase"], d["verdict"]))' "$SHOWN" 2>/dev/null) || return 0
	printf '%s\n' "$out" | grep -v '^#' | sed "s/^/    ${G}phase${N} /"
	SHOWN=$(printf '%s\n' "$out" | sed -n 's/^#\([0-9]*\) .*/\1/p')
	PHASE=$(printf '%s\n' "$out" | sed -n 's/^#[0-9]* \([^ ]*\) .*/\1/p')
	VERDICT=$(printf '%s\n' "$out" | sed -n 's/^#[0-9]* [^ ]* //p')
}
# until_phase PHASE SECS - print phase changes until PHASE is reached
until_phase() {
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		phases
		[ "${PHASE:-}" = "$1" ] && return 0
		sleep 0.5
	done
	die "phase $1 not reached after $2 s (see ferryctl status)"
}
# send r1|r2 RCPT SUBJECT - ask the resolver for the MX, send there
send() {
	local mx port out v=DNS_PORT_$1
	mx=$(dig +short +time=2 +tries=1 -p "${!v}" @127.0.0.1 "$DOMAIN" MX | awk '{ print $2 }' | sed 's/\.$//' | head -n 1)
	case $mx in
	"$OLD_MX") port=$RELAY_PORT ;;
	"$NEW_MX") port=$POSTFIX_PORT_B ;;
	*) die "resolver $1 answers '$mx'" ;;
	esac
	out=$(swaks --server "127.0.0.1:$port" --helo sender.example.org \
		--from carol@sender.example.org --to "$2" --header "Subject: $3" \
		--body "Sent by contrib/demo.sh." 2>&1)
	printf '    %s: %s says MX %-24s -> %s\n' "$2" "$1" "$mx" \
		"$(printf '%s\n' "$out" | grep -E '^<[-~] +250 .*queued' | tail -n 1 | sed "s/^<[-~] */$G/; s/\$/$N/")"
	printf '%s\n' "$out" | grep -Eq '^<[-~] +250 .*queued' || die "not accepted: $(printf '%s\n' "$out" | tail -n 3)"
}
relay_queue() {
	"$CTL" -c "$CONF" --json queue 2>/dev/null |
		"$LIB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}

# --- the cutover ------------------------------------------------------------------------

step "D-7: the old MX relays, ferry-syncd copies the history"
spawn relay "$RELAY" -d -c "$CONF"
wait_port "$RELAY_PORT" 10 || die "ferry-relay did not start (log: $T/log/relay.log)"
spawn syncd "$SYNCD" -d -c "$CONF"
say "ferry-relay and ferry-syncd run (logs: $T/log/relay.log, $T/log/syncd.log)"
show "$CTL" -c "$CONF" status
until_phase synced 60
send r1 "alice@$DOMAIN" "Before the switch"
send r2 "bob@$DOMAIN" "Before the switch, too"
show "$CTL" -c "$CONF" status

step "D-day: the MX record changes; resolver r1 sees it first"
update_dns_named r1 < <(zone new) || die "dnsmasq r1"
until_phase switching 20
sleep 1
say "the first new answer starts a catch-up pass at once:"
grep -h 'pass [0-9]*: starting' "$T/log/syncd.log" | tail -n 1 | sed "s/^/    $D/; s/\$/$N/"
send r1 "alice@$DOMAIN" "Via the new MX"
send r2 "bob@$DOMAIN" "Still via the old MX"

step "The new MX has a hiccup: the relay keeps its copy queued and retries"
stop_postfix B
send r2 "alice@$DOMAIN" "While the new MX is down"
sleep 3
show "$CTL" -c "$CONF" queue
POSTFIX_DOMAINS=$DOMAIN start_postfix B "lmtp:inet:127.0.0.1:$LMTP_PORT_B" >/dev/null || die "Postfix B"
for ((i = 0; i < 60; i++)); do
	[ "$(relay_queue)" = 0 ] && break
	sleep 0.5
done
say "the new MX is back; the relay's queue: $(relay_queue) message(s)"
say "(its copy in the old INBOX is not copied again by the catch-up passes: the ledger)"
phases

step "Resolver r2 follows: dual reception"
update_dns_named r2 < <(zone new) || die "dnsmasq r2"
until_phase dual-reception 20
send r2 "bob@$DOMAIN" "After the switch"
say "a straggler whose sender cached the old MX still reaches the relay:"
out=$(swaks --server "127.0.0.1:$RELAY_PORT" --helo stale.example.net \
	--from dave@stale.example.net --to "alice@$DOMAIN" --header "Subject: Straggler" \
	--body "Sent by contrib/demo.sh to the old MX." 2>&1)
printf '%s\n' "$out" | grep -E '^<[-~] +250 .*queued' | sed "s/^<[-~] */    $G/; s/\$/$N/"
show "$CTL" -c "$CONF" status

step "Waiting for the gap to close (quiet_period 30s after the last inbound message)"
for ((i = 0; i < 240; i++)); do
	phases
	[ "${PHASE:-}" = closed ] && break
	if [ $((i % 20)) -eq 0 ]; then
		"$CTL" -c "$CONF" status --json 2>/dev/null | "$LIB_PYTHON" -c '
import json, sys
for o in json.load(sys.stdin)["domains"][0]["outstanding"]:
    print("    outstanding: " + o)'
	fi
	sleep 0.5
done
[ "${PHASE:-}" = closed ] || die "the domain did not close (see ferryctl status)"

step "After: the verdict"
show "$CTL" -c "$CONF" status
show "$CTL" -c "$CONF" drain
dups=0 total=0
for u in alice bob; do
	"$LIB_PYTHON" "$TEST_DATA/mailbox_digest.py" "$IMAP_PORT_B" "$u@$DOMAIN" new-pw >"$T/b.$u" || die "IMAP B"
	total=$((total + $(wc -l <"$T/b.$u")))
	dups=$((dups + $(cut -f2 "$T/b.$u" | sort | uniq -d | wc -l)))
done
say "Dovecot B holds $total messages (300 of history, the rest sent during the demo); $dups Message-ID(s) twice"
if [ "${VERDICT:-}" = safe-to-retire ]; then
	printf '\n%sVerdict: %s%s%s — the gap is closed, the old host can go.\n' "$B" "$G" "$VERDICT" "$N"
else
	printf '\n%sVerdict: %s%s%s\n' "$B" "$Y" "${VERDICT:-?}" "$N"
fi
printf '%sDone.%s Stopping every server, removing %s.\n' "$B" "$N" "$T"
