#!/bin/bash
# test_tls.sh - common/tls through bufferevent_openssl (tests/integration/
# tls_probe) against real servers: Dovecot's IMAPS and IMAP STARTTLS with
# the harness's test CA, and an independent `openssl s_server` with a
# self-signed certificate made here.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd openssl dovecot
P=$top_builddir/tests/integration/tls_probe
[ -x "$P" ] || { echo "Bail out! $P not built"; exit 1; }

plan 19

# probe_says EXIT REGEX ARG... - run tls_probe (bounded in time), show its
# output, true when it exited with EXIT and a line matches REGEX.
probe_says() {
	local want=$1 re=$2 out rc
	shift 2
	out=$(timeout -k 5 30 "$P" -t 10 "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ $rc -eq "$want" ] || {
		echo "exit $rc, want $want"
		return 1
	}
	printf '%s\n' "$out" | grep -Eq "$re" || {
		echo "no line matches: $re"
		return 1
	}
}

check "dovecot starts" start_dovecot

VERIFIED='^tls: TLSv1\.[23] [A-Z0-9_-]+ verified$'

check "IMAPS (implicit TLS): verified for localhost with the test CA" \
	probe_says 0 "$VERIFIED" -C "$TEST_CA" -n localhost "$IMAPS_PORT"
check "IMAPS: the IMAP greeting arrives over the TLS channel" \
	probe_says 0 '^line: \* OK ' -C "$TEST_CA" -n localhost -g "$IMAPS_PORT"
check "IMAPS: an IP literal is checked against the IP SAN" \
	probe_says 0 "$VERIFIED" -C "$TEST_CA" -n 127.0.0.1 "$IMAPS_PORT"
check "IMAP STARTTLS: verified for localhost, LOGOUT answered over TLS" \
	probe_says 0 '^imap: b OK' -C "$TEST_CA" -n localhost -s imap "$IMAP_PORT"
check "IMAP STARTTLS: the description line" \
	probe_says 0 "$VERIFIED" -C "$TEST_CA" -s imap "$IMAP_PORT"

check "IMAPS: refused for a wrong host name" \
	probe_says 1 '^handshake failed: .*verify: hostname mismatch' \
	-C "$TEST_CA" -n wrong.example "$IMAPS_PORT"
check "IMAP STARTTLS: refused for a wrong host name" \
	probe_says 1 '^handshake failed: .*verify: hostname mismatch' \
	-C "$TEST_CA" -n wrong.example -s imap "$IMAP_PORT"
check "IMAPS: refused for a wrong IP literal" \
	probe_says 1 '^handshake failed: .*verify: IP address mismatch' \
	-C "$TEST_CA" -n 127.0.0.2 "$IMAPS_PORT"
check "IMAPS: refused without the test CA (system store)" \
	probe_says 1 '^handshake failed: .*verify: unable to get local issuer certificate' \
	-n localhost "$IMAPS_PORT"
check "opportunistic (-k): completes with a wrong name, says unverified" \
	probe_says 0 '^verify: hostname mismatch$' \
	-C "$TEST_CA" -n wrong.example -k "$IMAPS_PORT"
check "opportunistic (-k): the description says unverified" \
	probe_says 0 '^tls: TLSv1\.[23] [A-Z0-9_-]+ unverified$' \
	-n localhost -k "$IMAPS_PORT"
check "implicit TLS to the plain IMAP port fails cleanly" \
	probe_says 1 '^handshake failed: ' -C "$TEST_CA" "$IMAP_PORT"

# A second, independent server: openssl s_server with its own
# self-signed certificate (not the harness's CA).
pki=$T/own
mkdir -p "$pki"
own_cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$pki/own.key" -out "$pki/own.pem" -days 2 \
		-subj "/CN=mx.example.test" \
		-addext "subjectAltName=DNS:mx.example.test" \
		-addext "basicConstraints=critical,CA:TRUE"
}
check "a self-signed certificate for mx.example.test" own_cert

# s_server NAME ARG... - start one, export its port in SPORT_NAME
s_server() {
	local name=$1 port
	shift
	port=$(free_port) || return 1
	spawn "s_server-$name" openssl s_server -quiet -rev \
		-accept "127.0.0.1:$port" -cert "$pki/own.pem" \
		-key "$pki/own.key" "$@"
	wait_port "$port" || return 1
	eval "SPORT_$name=$port"
}
s_server main
s_server tls12 -tls1_2
s_server tls11 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'

check "s_server: verified with its own certificate as the CA" \
	probe_says 0 "$VERIFIED" -C "$pki/own.pem" -n mx.example.test "$SPORT_main"
check "s_server: refused with the test CA (another CA)" \
	probe_says 1 '^handshake failed: .*verify: self-signed certificate' \
	-C "$TEST_CA" -n mx.example.test "$SPORT_main"
check "s_server: refused for a wrong host name" \
	probe_says 1 '^handshake failed: .*verify: hostname mismatch' \
	-C "$pki/own.pem" -n localhost "$SPORT_main"
check "s_server limited to TLS 1.2: TLSv1.2, verified" \
	probe_says 0 '^tls: TLSv1\.2 [A-Z0-9_-]+ verified$' \
	-C "$pki/own.pem" -n mx.example.test "$SPORT_tls12"
check "s_server limited to TLS 1.1: refused even when opportunistic" \
	probe_says 1 '^handshake failed: ' \
	-C "$pki/own.pem" -n mx.example.test -k "$SPORT_tls11"

done_testing
