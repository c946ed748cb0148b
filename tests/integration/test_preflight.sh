#!/bin/bash
# test_preflight.sh - "ferryctl preflight" against real servers: two
# Dovecots (the destination with the quota plugin, a 1 MiB limit, a
# 200 KiB message size limit announced as APPENDLIMIT and a
# per-user connection limit), a wrong password, dnsmasq serving good
# and bad DNS (high MX TTL, SPF without the provider, no DMARC, no DKIM
# selector, a name that never answers); then an unreachable port and a
# server that greets and goes silent, each reported in its row within
# the timeout; configuration errors exit 2; no password is ever printed.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot
require_cmd dnsmasq

plan 31

PW_A=Alice-S3cret-7q PW_B=Bob-S3cret-8r PW_C=Carol-S3cret-9s
PW_BAD=Wr0ng-Dave-Pw-0t PW_D=Dave-S3cret-1u
DOVECOT_NAME=src DOVECOT_SPECIAL_USE='Sent=\Sent;Trash=\Trash' \
	start_dovecot "alice:$PW_A" "bob:$PW_B" "carol:$PW_C" "dave:$PW_D" ||
	{ echo "Bail out! source dovecot does not start"; exit 1; }
DOVECOT_NAME=dst DOVECOT_QUOTA=1M DOVECOT_APPENDLIMIT=200k \
	DOVECOT_EXTRA='mail_max_userip_connections = 2' \
	start_dovecot "alice:$PW_A" "bob:$PW_B" "carol:$PW_C" "dave:$PW_D" ||
	{ echo "Bail out! destination dovecot does not start"; exit 1; }

# Messages: alice a few small ones, bob 6 x 190 KiB (over the 1 MiB
# quota), carol one of 300 KiB (over APPENDLIMIT, within the quota).
msg() {	# msg FILE KIB
	{ printf 'From: a@example.test\r\nSubject: s\r\n\r\n'
	  head -c $(($2 * 1024)) /dev/zero | tr '\0' 'x' | fold -w 76 |
		sed 's/$/\r/'; } >"$1"
}
msg "$T/small" 1
msg "$T/big" 190
msg "$T/huge" 300
imap_create "$IMAP_PORT_src" alice "$PW_A" Archive >/dev/null
imap_append "$IMAP_PORT_src" alice "$PW_A" INBOX "$T/small" >/dev/null
imap_append "$IMAP_PORT_src" alice "$PW_A" Archive "$T/small" >/dev/null
for i in 1 2 3 4 5 6; do
	imap_append "$IMAP_PORT_src" bob "$PW_B" INBOX "$T/big" >/dev/null
done
imap_append "$IMAP_PORT_src" carol "$PW_C" INBOX "$T/huge" >/dev/null

# DNS: the main resolver with TTL 60, a second one with TTL 3600.
DNS_RECORDS='
MX good.test 10 mx1.provider.example
TXT good.test "v=spf1 include:spf.provider.example -all"
TXT _dmarc.good.test "v=DMARC1; p=quarantine; rua=mailto:d@good.test"
TXT sel1._domainkey.good.test "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC"
MX bad.test 10 old-mx.bad.test
TXT bad.test "v=spf1 mx -all"
TIMEOUT slow.test
'
DNS_TTL=60 start_dns <<<"$DNS_RECORDS" ||
	{ echo "Bail out! dnsmasq does not start"; exit 1; }
DNS_TTL=3600 start_dns_named hi <<<"$DNS_RECORDS" ||
	{ echo "Bail out! second dnsmasq does not start"; exit 1; }

ACC=$T/accounts
cat >"$ACC" <<EOF
alice $PW_A alice $PW_A
bob $PW_B bob $PW_B
carol $PW_C carol $PW_C
dave $PW_D dave $PW_BAD
EOF
chmod 600 "$ACC"

conf() {	# conf FILE SRC_URL DST_URL CONNS DOMAINS RESOLVERS
	cat >"$1" <<EOF
[global]
state_dir = $T
[syncd]
source = $2
destination = $3
accounts = $ACC
ca_file = $TEST_CA
connections_per_server = $4
[relay]
hostname = old-mx.bad.test
[cutover]
domains = $5
resolvers = $6
new_mx = *.provider.example
new_spf = include:spf.provider.example
new_dkim_selectors = sel1
EOF
}
SRC_URL="imaps://localhost:$IMAPS_PORT_src"
DST_URL="imap://127.0.0.1:$IMAP_PORT_dst"
conf "$T/main.conf" "$SRC_URL" "$DST_URL" 3 "good.test bad.test slow.test" \
	"127.0.0.1:$DNS_PORT, 127.0.0.1:$DNS_PORT_hi"

# run NAME CONF ARGS... - preflight into $T/NAME.out/.err/.rc, timed
run() {
	local name=$1 cf=$2 t0 t1
	shift 2
	t0=$(date +%s)
	timeout -k 5 120 "$FERRYCTL" -c "$cf" preflight --timeout 2 "$@" \
		>"$T/$name.out" 2>"$T/$name.err"
	echo $? >"$T/$name.rc"
	t1=$(date +%s)
	echo $((t1 - t0)) >"$T/$name.secs"
}
# row FILE TABLE 'PYCOND' FIELD - FIELD of the first row matching PYCOND
row() {
	"$LIB_PYTHON" -c "
import json, sys
d = json.load(open(sys.argv[1]))
for r in d[sys.argv[2]]:
    if $3:
        print(r[sys.argv[3]]); break
else:
    print('(no row)')" "$1" "$2" "$4"
}

export -f row
run main "$T/main.conf" --json
J=$T/main.out
check_output "blocking problems: exit 1" 1 cat "$T/main.rc"
check_output "the JSON verdict" "blocking problems" \
	"$LIB_PYTHON" -c "import json; print(json.load(open('$J'))['verdict'])"
check_output "source: TLS certificate verified" "verified for localhost ok" \
	bash -c "echo \$(row '$J' servers 'r[\"side\"]==\"source\"' certificate) \$(row '$J' servers 'r[\"side\"]==\"source\"' status)"
check_output "destination: CAPABILITY shows APPENDLIMIT" "yes" \
	bash -c "row '$J' servers 'r[\"side\"]==\"destination\"' capabilities | grep -q 'APPENDLIMIT=204800' && echo yes"
check_output "alice logs in on both sides" "ok ok" \
	bash -c "echo \$(row '$J' credentials 'r[\"account\"]==\"alice\" and r[\"side\"]==\"source\"' status) \$(row '$J' credentials 'r[\"account\"]==\"alice\" and r[\"side\"]==\"destination\"' status)"
check_output "dave's wrong destination password blocks" "block" \
	row "$J" credentials 'r["account"]=="dave" and r["side"]=="destination"' status
check_output "alice: 2 messages in 4 folders, fits" "4 2 ok" \
	bash -c "echo \$(row '$J' accounts 'r[\"account\"]==\"alice\"' folders) \$(row '$J' accounts 'r[\"account\"]==\"alice\"' messages) \$(row '$J' accounts 'r[\"account\"]==\"alice\"' status)"
check_output "bob's bytes exceed the destination's free quota" "block quota" \
	bash -c "echo \$(row '$J' accounts 'r[\"account\"]==\"bob\"' status) \$(row '$J' accounts 'r[\"account\"]==\"bob\"' note | cut -d: -f1)"
check_output "carol's largest message exceeds APPENDLIMIT" "block yes" \
	bash -c "echo \$(row '$J' accounts 'r[\"account\"]==\"carol\"' status) \$(row '$J' accounts 'r[\"account\"]==\"carol\"' note | grep -q 'over APPENDLIMIT' && echo yes)"
check_output "the destination's free quota is shown" "1.0M" \
	row "$J" accounts 'r["account"]=="alice"' dest_free
check_output "JSON: exact bytes behind the sizes" "True 1048576 204800" \
	bash -c "echo \$(row '$J' accounts 'r[\"account\"]==\"bob\"' size_bytes | sed 's/\$/ > 1048576/' | python3 -c 'print(eval(input()))') \$(row '$J' accounts 'r[\"account\"]==\"bob\"' dest_free_bytes) \$(row '$J' accounts 'r[\"account\"]==\"bob\"' appendlimit_bytes)"
check_output "Sent maps by SPECIAL-USE and would be created" "Sent create (special-use, USE Sent)" \
	bash -c "echo \$(row '$J' folders 'r[\"account\"]==\"alice\" and r[\"source\"]==\"Sent\"' destination) \$(row '$J' folders 'r[\"account\"]==\"alice\" and r[\"source\"]==\"Sent\"' action)"
check_output "special folders per side" "Sent Sent (new)" \
	bash -c "echo \$(row '$J' special_folders 'r[\"account\"]==\"alice\" and r[\"side\"]==\"source\"' sent) \$(row '$J' special_folders 'r[\"account\"]==\"alice\" and r[\"side\"]==\"destination\"' sent)"
check_output "connection limit: the source takes 3" "3 ok" \
	bash -c "echo \$(row '$J' connections 'r[\"side\"]==\"source\"' opened) \$(row '$J' connections 'r[\"side\"]==\"source\"' status)"
check_output "connection limit: the destination refuses the third" "2 block" \
	bash -c "echo \$(row '$J' connections 'r[\"side\"]==\"destination\"' opened) \$(row '$J' connections 'r[\"side\"]==\"destination\"' status)"
check_output "MX TTL 60 s passes, 3600 s warns" "60 ok 3600 warn" \
	bash -c "echo \$(row '$J' mx 'r[\"domain\"]==\"good.test\" and r[\"resolver\"].endswith(\":$DNS_PORT\")' ttl) \$(row '$J' mx 'r[\"domain\"]==\"good.test\" and r[\"resolver\"].endswith(\":$DNS_PORT\")' status) \$(row '$J' mx 'r[\"domain\"]==\"good.test\" and r[\"resolver\"].endswith(\":$DNS_PORT_hi\")' ttl) \$(row '$J' mx 'r[\"domain\"]==\"good.test\" and r[\"resolver\"].endswith(\":$DNS_PORT_hi\")' status)"
check_output "good.test: SPF, DMARC and DKIM pass" "ok ok policy quarantine ok" \
	bash -c "echo \$(row '$J' dns_records 'r[\"domain\"]==\"good.test\" and r[\"check\"]==\"SPF\"' status) \$(row '$J' dns_records 'r[\"domain\"]==\"good.test\" and r[\"check\"]==\"DMARC\"' status) \$(row '$J' dns_records 'r[\"domain\"]==\"good.test\" and r[\"check\"]==\"DMARC\"' result) \$(row '$J' dns_records 'r[\"domain\"]==\"good.test\" and r[\"check\"]==\"DKIM sel1\"' status)"
check_output "bad.test: SPF lacks the provider, no DMARC, no DKIM" "block warn block" \
	bash -c "echo \$(row '$J' dns_records 'r[\"domain\"]==\"bad.test\" and r[\"check\"]==\"SPF\"' status) \$(row '$J' dns_records 'r[\"domain\"]==\"bad.test\" and r[\"check\"]==\"DMARC\"' status) \$(row '$J' dns_records 'r[\"domain\"]==\"bad.test\" and r[\"check\"]==\"DKIM sel1\"' status)"
check_output "slow.test: the DNS timeout is reported in its row" "block yes" \
	bash -c "echo \$(row '$J' mx 'r[\"domain\"]==\"slow.test\"' status) \$(row '$J' mx 'r[\"domain\"]==\"slow.test\"' note | grep -q timeout && echo yes)"

# The text form: the same run as tables and the verdict line.
run text "$T/main.conf"
check_output "text: the verdict line counts the blocking problems" \
	"$(python3 -c "import json; print(json.load(open('$J'))['blocking'])") blocking problems" \
	bash -c "tail -n 1 '$T/text.out' | sed 's/ (.*//'"

# One account, all good: ready, exit 0.
conf "$T/ready.conf" "$SRC_URL" "$DST_URL" 2 good.test "127.0.0.1:$DNS_PORT"
run ready "$T/ready.conf" --account alice
check_output "one good account, good DNS: ready, exit 0" "0 ready" \
	bash -c "echo \$(cat '$T/ready.rc') \$(tail -n 1 '$T/ready.out')"
cp "$T/ready.out" "$T/log/preflight-ready.txt"

# An unreachable source and a destination that greets and goes silent.
HANG_PORT=$(free_port)
spawn hang-imap "$LIB_PYTHON" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
held = []
while True:
    c, _ = s.accept()
    c.sendall(b"* OK IMAP ready\r\n")
    held.append(c)
' "$HANG_PORT"
wait_port "$HANG_PORT" || { echo "Bail out! hanging server does not listen"; exit 1; }
DEAD_PORT=$(free_port)
conf "$T/dead.conf" "imap://127.0.0.1:$DEAD_PORT?tls=none" \
	"imap://127.0.0.1:$HANG_PORT?tls=none" 2 slow.test "127.0.0.1:$DNS_PORT"
run dead "$T/dead.conf" --json --account alice
J=$T/dead.out
check_output "unreachable and hanging servers: exit 1" 1 cat "$T/dead.rc"
check_output "the unreachable port is reported in its row" "block refused" \
	bash -c "echo \$(row '$J' servers 'r[\"side\"]==\"source\"' status) \$(row '$J' servers 'r[\"side\"]==\"source\"' tcp | grep -io refused | tr A-Z a-z)"
check_output "the silent server is reported in its row" "block yes" \
	bash -c "echo \$(row '$J' servers 'r[\"side\"]==\"destination\"' status) \$(row '$J' servers 'r[\"side\"]==\"destination\"' capabilities | grep -q 'timeout' && echo yes)"
check_output "alice's logins fail on both, each in its row" "block block" \
	bash -c "echo \$(row '$J' credentials 'r[\"side\"]==\"source\"' status) \$(row '$J' credentials 'r[\"side\"]==\"destination\"' status)"
check "all of it within a bounded time (under 20 s with --timeout 2)" \
	test "$(cat "$T/dead.secs")" -lt 20

# A server that takes the login and then stops answering (LIST).
STALL_PORT=$(free_port)
spawn stall-imap "$LIB_PYTHON" -c '
import socket, sys, threading
def serve(c):
    f = c.makefile("rb")
    c.sendall(b"* OK IMAP ready\r\n")
    for line in f:
        w = line.split()
        if len(w) < 2:
            continue
        cmd = w[1].upper()
        if cmd == b"CAPABILITY":
            c.sendall(b"* CAPABILITY IMAP4rev1\r\n" + w[0] + b" OK done\r\n")
        elif cmd == b"LOGIN":
            c.sendall(w[0] + b" OK logged in\r\n")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
' "$STALL_PORT"
wait_port "$STALL_PORT" || { echo "Bail out! stalling server does not listen"; exit 1; }
conf "$T/stall.conf" "imap://127.0.0.1:$STALL_PORT?tls=none" \
	"imap://127.0.0.1:$IMAP_PORT_dst?tls=none" 1 good.test "127.0.0.1:$DNS_PORT"
run stall "$T/stall.conf" --json --account alice
J=$T/stall.out
check_output "a server silent after the login: its row says so, in time" "block yes yes" \
	bash -c "echo \$(row '$J' credentials 'r[\"side\"]==\"source\"' status) \$(row '$J' credentials 'r[\"side\"]==\"source\"' login | grep -q '^logged in, then .*2 seconds' && echo yes) \$(test \$(cat '$T/stall.secs') -lt 15 && echo yes)"

# Configuration errors: exit 2.
printf '[global]\nstate_dir = %s\n[syncd]\nsource = %s\n' "$T" "$SRC_URL" \
	>"$T/bad.conf"
run badconf "$T/bad.conf"
check_output "no destination/accounts: configuration error, exit 2" 2 \
	cat "$T/badconf.rc"
run nobody "$T/main.conf" --account nobody
check_output "--account naming nobody: exit 2" 2 cat "$T/nobody.rc"
check_output "--account with another command: exit 2" 2 \
	bash -c "'$FERRYCTL' -c '$T/main.conf' --account alice queue >/dev/null 2>&1; echo \$?"

# No password, right or wrong, in any output.
check_fail "no credential appears in any output" \
	grep -rlF -e "$PW_A" -e "$PW_B" -e "$PW_C" -e "$PW_D" -e "$PW_BAD" \
	"$T"/main.out "$T"/main.err "$T"/text.out "$T"/text.err \
	"$T"/ready.out "$T"/ready.err "$T"/dead.out "$T"/dead.err \
	"$T"/stall.out "$T"/stall.err

done_testing
