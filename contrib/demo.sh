#!/bin/bash
# demo.sh - mailferry's main job in one minute, on loopback only.
#
# usage: contrib/demo.sh [FERRY_RELAY [FERRYCTL [FERRY_SYNCD]]]
#        (default: relay/ferry-relay, ctl/ferryctl and syncd/ferry-syncd
#        under the current directory, i.e. run it from the build directory)
#
# It plays a cutover's first hours on this machine:
#   - ferry-relay runs as the "old MX" with the demo configuration
#     (conf/mailferry.conf.example, copied into a temporary directory:
#     its state, spool and control socket live there);
#   - Postfix's smtp-sink plays the "new provider";
#   - swaks plays the senders that still reach the old MX.
# The first message arrives while the new provider is down: it is spooled,
# deferred, shown in "ferryctl queue", and delivered once the provider is
# back.  The next ones go straight through.  "ferryctl stats" and
# /metrics show the counters, "ferryctl drain" what still reaches the old
# MX.  Then contrib/demo_sync.sh plays the history half: ferry-syncd
# copies a generated mailbox between two private Dovecots and closes the
# gap with a delta pass.  Everything is stopped and removed on exit,
# also on Ctrl-C.  Nothing listens on anything but 127.0.0.1.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RELAY=${1:-relay/ferry-relay}
CTL=${2:-ctl/ferryctl}
SYNCD=${3:-syncd/ferry-syncd}
EXAMPLE=$here/../conf/mailferry.conf.example
PY=$(command -v python3 || true)

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' Y=$'\e[33m' N=$'\e[0m'
else
	B= D= G= Y= N=
fi

die() {
	echo "demo: $*" >&2
	exit 1
}

for p in "$RELAY" "$CTL"; do
	[ -x "$p" ] || die "$p not found: build first (./configure && make), or give the paths: $0 RELAY FERRYCTL"
done
RELAY=$(cd "$(dirname "$RELAY")" && pwd)/$(basename "$RELAY")
CTL=$(cd "$(dirname "$CTL")" && pwd)/$(basename "$CTL")
[ -f "$EXAMPLE" ] || die "$EXAMPLE not found"
for c in swaks smtp-sink curl; do
	command -v "$c" >/dev/null ||
		die "$c is missing (sudo contrib/install-deps.sh installs it)"
done
[ -n "$PY" ] || die "python3 is missing"

# --- a private world in a temporary directory ---------------------------------

D_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-demo.XXXXXX") || die "mktemp failed"
RELAY_PID= SINK_PID=

cleanup() {
	local p
	for p in $RELAY_PID $SINK_PID; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $RELAY_PID $SINK_PID; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$D_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SMTP_PORT=$(free_port)
SINK_PORT=$(free_port)
HTTP_PORT=$(free_port)
STATE=$D_TMP/state
CONF=$D_TMP/mailferry.conf
mkdir -p "$STATE" "$D_TMP/sink"

# The example with the paths and ports of this run.  retry_initial is
# short so the deferred message is retried while you watch.  SPF and
# DKIM are off: their DNS look-ups would leave this machine.
sed -e "s|^state_dir = .*|state_dir = $STATE|" \
	-e "s|^listen = .*|listen = 127.0.0.1:$SMTP_PORT|" \
	-e "s|^upstream = .*|upstream = 127.0.0.1:$SINK_PORT|" \
	-e "s|^http = .*|http = 127.0.0.1:$HTTP_PORT|" \
	-e "s|^retry_initial = .*|retry_initial = 5s|" \
	-e "s|^connect_timeout = .*|connect_timeout = 5s|" \
	-e "s|^accounts = .*|accounts = $D_TMP/accounts|" \
	-e "s|^spf = .*|spf = off|" -e "s|^dkim = .*|dkim = off|" \
	"$EXAMPLE" >"$CONF"

step() {
	printf '\n%s==> %s%s\n' "$B" "$*" "$N"
}

show() {
	printf '%s$ %s%s\n' "$D" "$*" "$N"
	"$@" 2>&1 | sed 's/^/    /'
}

wait_tcp() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

start_sink() {
	local user=()
	[ "$(id -u)" -ne 0 ] || user=(-u root)	# stay root: it writes into $D_TMP
	smtp-sink "${user[@]}" -d "$D_TMP/sink/msg." "127.0.0.1:$SINK_PORT" 100 \
		>>"$D_TMP/sink.log" 2>&1 &
	SINK_PID=$!
	wait_tcp "$SINK_PORT" || die "smtp-sink did not start"
}

sink_count() {
	find "$D_TMP/sink" -type f | wc -l
}

# queue_json PYCODE - run PYCODE on "ferryctl --json queue"
queue_json() {
	"$CTL" -c "$CONF" --json queue 2>/dev/null | "$PY" -c "$1"
}

send() {
	local out
	out=$(swaks --server "127.0.0.1:$SMTP_PORT" --helo sender.example.org \
		--from "$1" --to "$2" --header "Subject: $3" \
		--body "Sent through ferry-relay by contrib/demo.sh." 2>&1)
	printf '%s\n' "$out" | grep -E '^<[-~] +250 .*queued as' | sed "s/^<[-~] */    $G/; s/\$/$N/"
	printf '%s\n' "$out" | grep -Eq '^<[-~] +250 .*queued as' ||
		{ printf '%s\n' "$out" | tail -n 5; die "the relay did not accept the message"; }
}

# --- the demo ---------------------------------------------------------------

cat <<EOF
${B}mailferry demo${N}: ferry-relay as the old MX, smtp-sink as the new provider.
  configuration   $CONF (from conf/mailferry.conf.example)
  old MX (relay)  127.0.0.1:$SMTP_PORT    new provider (sink)  127.0.0.1:$SINK_PORT
  metrics         http://127.0.0.1:$HTTP_PORT/metrics
EOF

step "Start ferry-relay (the new provider is still down)"
show "$RELAY" -t -c "$CONF"
"$RELAY" -d -c "$CONF" >"$D_TMP/relay.log" 2>&1 &
RELAY_PID=$!
wait_tcp "$SMTP_PORT" || { tail -n 20 "$D_TMP/relay.log"; die "ferry-relay did not start"; }
echo "    ferry-relay runs, pid $RELAY_PID (log: $D_TMP/relay.log)"

step "A late sender reaches the old MX: the relay spools the message (250 = on disk)"
send alice@sender.example.org bob@example.com "Quarterly report"

step "Forwarding fails (nothing listens on the provider's port): the message is deferred"
for ((i = 0; i < 100; i++)); do
	n=$(queue_json 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["messages"] if m["attempts"] > 0))')
	[ "${n:-0}" -ge 1 ] && break
	sleep 0.1
done
show "$CTL" -c "$CONF" queue

step "The new provider comes up; the relay retries on its own (retry_initial = 5s)"
start_sink
echo "    smtp-sink listens on 127.0.0.1:$SINK_PORT, waiting for the retry..."
for ((i = 0; i < 300; i++)); do
	[ "$(sink_count)" -ge 1 ] && break
	sleep 0.1
done
if [ "$(sink_count)" -ge 1 ]; then
	echo "    ${G}delivered${N} after $((i / 10)).$((i % 10)) s"
else
	echo "    ${Y}not delivered yet; forcing it:${N}"
	show "$CTL" -c "$CONF" retry all
	sleep 2
fi
show "$CTL" -c "$CONF" queue

step "Two more senders: with the provider up, mail goes straight through"
send carol@elsewhere.example bob@example.com "Lunch on Friday?"
send dave@partner.example sales@example.com "Order 4711"
for ((i = 0; i < 100; i++)); do
	[ "$(sink_count)" -ge 3 ] && break
	sleep 0.1
done
echo "    the new provider holds $(sink_count) message(s)"

step "A sender for a domain the relay does not serve is refused (no open relay)"
swaks --server "127.0.0.1:$SMTP_PORT" --from eve@spam.example \
	--to victim@not-ours.example --quit-after RCPT 2>&1 |
	grep -E '^<\*\* +5' | sed "s/^<\*\* */    $Y/; s/\$/$N/"

step "What the admin sees"
show "$CTL" -c "$CONF" stats
printf '%s$ curl -s http://127.0.0.1:%s/metrics | grep _total%s\n' "$D" "$HTTP_PORT" "$N"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E '^mailferry_relay_[a-z_]+_total(\{reason="relay_denied"\})? ' |
	sed 's/^/    /'

step "The relay's log, Postfix style"
grep -E ': (from=|to=|removed|client=)' "$D_TMP/relay.log" | sed 's/^/    /' | head -n 20

step "Is the old MX drained yet? (not while mail still arrives)"
show "$CTL" -c "$CONF" drain

"$here/demo_sync.sh" "$SYNCD" "$CTL" || die "the history part failed"

printf '\n%sDone.%s Stopping ferry-relay and smtp-sink, removing %s.\n' "$B" "$N" "$D_TMP"
