#!/bin/bash
# test_relay_srs.sh - the Sender Rewriting Scheme end to end: client
# (python smtplib) -> ferry-relay -> smtp-sink (upstream) and a second
# smtp-sink as dsn_relay (the route back to original senders).
#   SRS on: the upstream sees MAIL FROM:<SRS0=HHHHHHHH=TT=domain=local@
#       srs_domain>, the address computed here independently (HMAC-SHA256
#       of the secret, base32, today's day stamp); <> and a sender already
#       in srs_domain are passed unchanged; the header is untouched;
#   a bounce (MAIL FROM:<>) to that SRS address is accepted although
#       srs_domain is not in [relay] domains, and reaches the original
#       sender over the DSN route, not the upstream; a lower-cased copy
#       of the address (some MTAs do that) still reverses;
#   a tampered hash, a changed local part and an expired day stamp:
#       550 5.1.1 at RCPT, nothing delivered;
#   SRS off (a second relay): the sender goes upstream unchanged, and
#       the SRS address is not a recipient of ours.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink dnsmasq "$LIB_PYTHON"

plan 20

M=$T/msg
STATE=$T/state
STATE2=$T/state2
PORT=$(free_port)
PORT2=$(free_port)
mkdir -p "$M" "$STATE" "$STATE2"
SECRET=srs-test-secret-0123456789abcdef
SRSDOM=srs.relay.test


# srs.py SECRET SRSDOMAIN ADDRESS [DAYS_AGO] - the SRS0 address of
# relay/srs.h, computed independently
cat >"$T/srs.py" <<'EOF'
import base64, hashlib, hmac, sys, time
secret, srsdom, addr = sys.argv[1:4]
ago = int(sys.argv[4]) if len(sys.argv) > 4 else 0
local, domain = addr.rsplit("@", 1)
b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
day = (int(time.time()) // 86400 - ago) % 1024
tt = b32[day >> 5] + b32[day & 31]
msg = (tt.lower() + "\0" + domain.lower() + "\0" + local.lower()).encode()
h = base64.b32encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:5]).decode()
print("SRS0=%s=%s=%s=%s@%s" % (h, tt, domain, local, srsdom))
EOF
srs() {
	"$LIB_PYTHON" "$T/srs.py" "$SECRET" "$SRSDOM" "$@"
}

# mkmsg NAME FROM - a message with X-Case: NAME
mkmsg() {
	printf '%s\n' "From: <$2>" "To: <bob@example.net>" \
		"Subject: srs case $1" "Message-ID: <$1@srs.test>" \
		"X-Case: $1" "" "case $1: the quick brown fox" "bye" >"$M/$1.eml"
}

# send [-p PORT] FROM RCPTS NAME - the outcome line of one session
send() {
	local port=$PORT
	if [ "$1" = -p ]; then
		port=$2
		shift 2
	fi
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$port" "$1" "$2" "$M/$3.eml" | tail -n 1
}

# accepted [-p PORT] FROM RCPTS NAME - 250 at the end of DATA
accepted() {
	local r
	r=$(send "$@")
	echo "$r"
	case $r in "DATA 250 "*) return 0 ;; esac
	return 1
}

# refused_with CODE [-p PORT] FROM RCPTS NAME - the reply starts CODE
refused_with() {
	local code=$1 r
	shift
	r=$(send "$@")
	echo "$r"
	case $r in "RCPT $code"*) return 0 ;; esac
	return 1
}

# case_file SINKNAME CASE [SECS] - the one dump file of CASE in that sink
case_file() {
	local v=SINK_DIR_$1 i f n
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		f=$(grep -l -x "X-Case: $2" "${!v}"/msg.* 2>/dev/null)
		n=$(printf '%s' "$f" | grep -c .)
		if [ "$n" -eq 1 ]; then
			printf '%s\n' "$f"
			return 0
		fi
		[ "$n" -gt 1 ] && { echo "case $2 arrived $n times at $1" >&2; return 1; }
		sleep 0.1
	done
	echo "case $2 did not arrive at $1" >&2
	return 1
}

# envelope SINKNAME CASE - "MAIL <from> RCPT <to>..." as that sink saw it
envelope() {
	local f
	f=$(case_file "$1" "$2") || return 1
	sink_envelope "$f" | awk '
		/^X-Mail-Args: / { m = $2 }
		/^X-Rcpt-Args: / { r = r " RCPT " $2 }
		END { print "MAIL " m r }'
}

# none_at SINKNAME CASE... - none of the cases arrived there
none_at() {
	local v=SINK_DIR_$1 c
	shift
	sleep 1
	for c in "$@"; do
		if grep -q -l -x "X-Case: $c" "${!v}"/msg.* 2>/dev/null; then
			echo "case $c arrived"
			return 1
		fi
	done
}

# --- servers -----------------------------------------------------------------

check "dnsmasq starts" start_dns <<'EOF'
TXT origin.test "v=spf1 ip4:127.0.0.1 -all"
EOF
SINK_NAME=main start_smtp_sink || exit 1
SINK_NAME=dsn start_smtp_sink || exit 1

relay_conf() {	# FILE STATE PORT SRS-LINES
	cat >"$1" <<EOF
[global]
state_dir = $2
[relay]
listen = 127.0.0.1:$3
hostname = relay.test
domains = example.net
[forward]
upstream = 127.0.0.1:$SINK_PORT_main
dsn_relay = 127.0.0.1:$SINK_PORT_dsn
tls = none
retry_initial = 1s
retry_max = 2s
$4
[checks]
dns = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
[control]
socket = $2/control.sock
http =
EOF
}
relay_conf "$T/relay.conf" "$STATE" "$PORT" "srs_secret = $SECRET
srs_domain = $SRSDOM"
spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
check "ferry-relay starts with SRS on" wait_port "$PORT" 10

# --- forward --------------------------------------------------------------------

SRS_ALICE=$(srs alice@origin.test)
diag "expected SRS address: $SRS_ALICE"
mkmsg fwd alice@origin.test
mkmsg null ""
mkmsg own "x@$SRSDOM"
check "a message from alice@origin.test is accepted" \
	accepted alice@origin.test bob@example.net fwd
check_output "the upstream sees the SRS0 sender" \
	"MAIL <$SRS_ALICE> RCPT <bob@example.net>" envelope main fwd
header_untouched() {
	local f
	f=$(case_file main fwd) || return 1
	sink_message "$f" | grep -x 'From: <alice@origin.test>'
}
check "the From: header is untouched" header_untouched
check "a <> sender is accepted" accepted "" bob@example.net null
check_output "...and stays <> upstream" "MAIL <> RCPT <bob@example.net>" \
	envelope main null
check "a sender already in srs_domain is accepted" \
	accepted "x@$SRSDOM" bob@example.net own
check_output "...and is not wrapped again" \
	"MAIL <x@$SRSDOM> RCPT <bob@example.net>" envelope main own

# --- bounces back -----------------------------------------------------------------

mkmsg bounce ""
mkmsg bouncelc ""
check "a bounce to the SRS address is accepted (srs_domain not in domains)" \
	accepted "" "$SRS_ALICE" bounce
check_output "it reaches the original sender over the DSN route" \
	"MAIL <> RCPT <alice@origin.test>" envelope dsn bounce
check "...and not the upstream" none_at main bounce
LOWER=$(tr 'A-Z' 'a-z' <<<"$SRS_ALICE")
check "the lower-cased SRS address is accepted too" \
	accepted "" "$LOWER" bouncelc
check_output "...and reverses to the original sender" \
	"MAIL <> RCPT <alice@origin.test>" envelope dsn bouncelc

# --- refusals -----------------------------------------------------------------------

# one hash character changed (A<->B)
c=${SRS_ALICE:5:1}
[ "$c" = A ] && c=B || c=A
TAMPERED="SRS0=$c${SRS_ALICE:6}"
# a valid hash for alice, local part swapped for mallory
SWAPPED=${SRS_ALICE/=alice@/=mallory@}
EXPIRED=$(srs alice@origin.test 30)
diag "tampered: $TAMPERED" "swapped:  $SWAPPED" "expired:  $EXPIRED"
mkmsg tampered ""
mkmsg swapped ""
mkmsg expired ""
check "a tampered hash: 550 5.1.1" refused_with "550 5.1.1" "" "$TAMPERED" \
	tampered
check "another local part under the same hash: 550 5.1.1" \
	refused_with "550 5.1.1" "" "$SWAPPED" swapped
check "a day stamp 30 days old: 550 5.1.1" \
	refused_with "550 5.1.1" "" "$EXPIRED" expired
check "none of them was delivered anywhere" eval \
	'none_at dsn tampered swapped expired && none_at main tampered swapped expired'

# --- SRS off -------------------------------------------------------------------------

relay_conf "$T/relay2.conf" "$STATE2" "$PORT2" ""
spawn relay2 "$FERRY_RELAY" -d -c "$T/relay2.conf"
wait_port "$PORT2" 10 || { echo "Bail out! the second relay does not start"; exit 1; }
mkmsg off alice@origin.test
mkmsg offbounce ""
srs_off() {
	accepted -p "$PORT2" alice@origin.test bob@example.net off &&
		envelope main off
}
check_output "SRS off: the upstream sees the sender unchanged" \
	"DATA 250 2.0.0 Ok: queued as ...
MAIL <alice@origin.test> RCPT <bob@example.net>" eval \
	'srs_off | sed "1s/[0-9a-f]\{16\}.*/.../"'
check "SRS off: an SRS address is no recipient of ours (5xx)" \
	refused_with 5 -p "$PORT2" "" "$SRS_ALICE" offbounce

done_testing
