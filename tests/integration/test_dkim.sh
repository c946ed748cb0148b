#!/bin/bash
# test_dkim.sh - relay/dkim_verify against a real DNS server (dnsmasq on
# 127.0.0.1, see lib.sh start_dns), driven through tests/integration/
# dkim_tool: messages signed here with libopendkim (rsa-sha256 and
# ed25519-sha256, keys made by openssl for this run) verify against keys
# served by dnsmasq (an RSA key is longer than one 255-byte string, so
# the resolver must glue it); a body or a header altered after signing
# fails; a key that never answers is a temperror within the resolver's
# timeout; a missing or broken key is a permerror; the unit tests'
# fixtures verify through real DNS too.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq openssl
TOOL=$top_builddir/tests/integration/dkim_tool
[ -x "$TOOL" ] || { echo "Bail out! $TOOL not built"; exit 1; }
D=$TEST_DATA/dkim

# tool ARG... - dkim_tool, killed if it hangs (a lost callback would)
tool() {
	timeout -k 5 30 "$TOOL" "$@"
}
# verify FILE [ARG...] - the verdict lines; exit 0 for pass AND for a
# verdict that is not pass (1), non-zero only when the tool failed (2)
verify() {
	local f=$1 rc
	shift
	tool verify -S "127.0.0.1:$DNS_PORT" "$@" "$f"
	rc=$?
	[ $rc -le 1 ]
}
# sign KEY SELECTOR IN OUT [ARG...]
sign() {
	local key=$1 sel=$2 in=$3 out=$4
	shift 4
	tool sign -k "$key" -s "$sel" -d example.test "$@" "$in" >"$out"
}
# bpref FILE [N] - the first 8 characters of b= in the N-th (default
# first) DKIM-Signature field of FILE
bpref() {
	tr -d '\r' <"$1" | awk -v want="${2:-1}" '
		function done() {
			if (tolower(f) ~ /^dkim-signature:/ && ++n == want) {
				print f
				found = 1
				exit
			}
		}
		/^$/ { done(); f = ""; exit }
		/^[ \t]/ { f = f $0; next }
		{ done(); f = $0 }
		END { if (!found) done() }' |
		tr -d ' \t' | sed 's/.*;b=//' | cut -c1-8
}
# line SEL FILE RESULT [REASON] - the expected verdict line
line() {
	printf 'dkim=%s header.d=example.test header.s=%s header.b=%s%s' \
		"$3" "$1" "$(bpref "$2")" "${4:+ ($4)}"
}
# timed MIN_MS MAX_MS CMD... - CMD's output; fails outside the window
timed() {
	local min=$1 max=$2 t0 t1 ms
	shift 2
	t0=$(date +%s%N)
	"$@" || return 1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	if [ "$ms" -lt "$min" ] || [ "$ms" -gt "$max" ]; then
		echo "took ${ms} ms, expected ${min}..${max}" >&2
		return 1
	fi
}

plan 22

M=$T/msg
mkdir -p "$M"
check "RSA-2048 key (openssl)" openssl genpkey -algorithm RSA \
	-pkeyopt rsa_keygen_bits:2048 -out "$M/rsa.key"
check "Ed25519 key (openssl)" openssl genpkey -algorithm ed25519 \
	-out "$M/ed.key"
RSA_REC=$(tool pubkey -k "$M/rsa.key")
ED_REC=$(tool pubkey -k "$M/ed.key")
FIX_RSA_REC=$(tool pubkey -k "$D/rsa.private")
FIX_ED_REC=$(tool pubkey -k "$D/ed25519.private")

check "dnsmasq serves the keys" start_dns <<EOF
TXT r2048._domainkey.example.test "$RSA_REC"
TXT e1._domainkey.example.test "$ED_REC"
TXT rsa._domainkey.example.test "$FIX_RSA_REC"
TXT ed._domainkey.example.test "$FIX_ED_REC"
TXT broken._domainkey.example.test "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0"
TIMEOUT slow._domainkey.example.test
EOF

check "sign: rsa-sha256, ed25519-sha256, both, and the failure cases" \
	eval 'sign "$M/rsa.key" r2048 "$D/plain.eml" "$M/rsa.eml" &&
	sign "$M/ed.key" e1 "$D/plain.eml" "$M/ed.eml" &&
	sign "$M/ed.key" e1 "$M/rsa.eml" "$M/both.eml" &&
	sign "$M/rsa.key" slow "$D/plain.eml" "$M/slow.eml" &&
	sign "$M/ed.key" nokey "$D/plain.eml" "$M/nokey.eml" &&
	sign "$M/rsa.key" broken "$D/plain.eml" "$M/broken.eml" &&
	sign "$M/rsa.key" r2048 "$D/plain.eml" "$M/simple.eml" -c simple/simple'

check_output "rsa-sha256 passes" "$(line r2048 "$M/rsa.eml" pass)" \
	verify "$M/rsa.eml"
check_output "ed25519-sha256 passes (RFC 8463)" \
	"$(line e1 "$M/ed.eml" pass)" verify "$M/ed.eml"
check_output "two signatures: both reported, both pass" \
	"$(line e1 "$M/both.eml" pass)
dkim=pass header.d=example.test header.s=r2048 header.b=$(bpref "$M/rsa.eml")" \
	verify "$M/both.eml"
check_output "simple/simple canonicalisation passes" \
	"$(line r2048 "$M/simple.eml" pass)" verify "$M/simple.eml"
check "every signature passed: exit 0" tool verify -S "127.0.0.1:$DNS_PORT" \
	"$M/both.eml"

sed 's/the lazy dog/the lazy cat/' "$M/rsa.eml" >"$M/rsa-body.eml"
sed 's/the lazy dog/the lazy cat/' "$M/ed.eml" >"$M/ed-body.eml"
sed 's/^Subject: a test/Subject: a tost/' "$M/rsa.eml" >"$M/rsa-hdr.eml"
check_output "rsa: body altered after signing fails" \
	"$(line r2048 "$M/rsa.eml" fail "body hash mismatch")" \
	verify "$M/rsa-body.eml"
check_output "ed25519: body altered after signing fails" \
	"$(line e1 "$M/ed.eml" fail "body hash mismatch")" \
	verify "$M/ed-body.eml"
check_output "signed header altered fails" \
	"$(line r2048 "$M/rsa.eml" fail "signature did not verify")" \
	verify "$M/rsa-hdr.eml"
check_fail "a failed signature: exit non-zero" tool verify \
	-S "127.0.0.1:$DNS_PORT" "$M/rsa-body.eml"

check_output "key that never answers: temperror within the 1.5 s timeout" \
	"$(line slow "$M/slow.eml" temperror "key look-up: timeout after 1500 ms")" \
	timed 1400 6000 verify "$M/slow.eml" -t 1500
check_output "missing key (NXDOMAIN): permerror" \
	"$(line nokey "$M/nokey.eml" permerror "no key (NXDOMAIN)")" \
	verify "$M/nokey.eml"
check_output "broken key: permerror" \
	"$(line broken "$M/broken.eml" permerror "key cannot be decoded")" \
	verify "$M/broken.eml"
check_output "unsigned message: none" "dkim=none" verify "$D/plain.eml"

# an unsigned From above the signed one: readers show the top one
sed '0,/^From: /s//From: Mallory <mallory@evil.test>\r\nFrom: /' \
	"$M/rsa.eml" >"$M/rsa-from2.eml"
check_output "second (unsigned) From: fail" \
	"$(line r2048 "$M/rsa.eml" fail "2 From fields (RFC 5322 3.6 allows one)")" \
	verify "$M/rsa-from2.eml"
# dkimpy is Debian's python3-dkim, seen by the system Python (LIB_PYTHON)
if "$LIB_PYTHON" -c 'import dkim' 2>/dev/null; then
	check "dkimpy agrees: the second From does not verify" \
		"$LIB_PYTHON" -c 'import sys, dkim
sys.exit(0 if not dkim.verify(open(sys.argv[1], "rb").read(),
    dnsfunc=lambda n, timeout=5: sys.argv[2].encode()) else 1)' \
		"$M/rsa-from2.eml" "$RSA_REC"
else
	skip "dkimpy agrees: the second From does not verify" \
		"python3-dkim not installed"
fi

# what smtp-sink stores: LF line ends; the tool restores CRLF
sed 's/\r$//' "$M/both.eml" >"$M/both-lf.eml"
check_output "LF-only copy of a signed message still passes" \
	"$(line e1 "$M/both.eml" pass)
dkim=pass header.d=example.test header.s=r2048 header.b=$(bpref "$M/rsa.eml")" \
	verify "$M/both-lf.eml"
check_output "the unit tests' fixtures pass through real DNS" \
	"$(line ed "$D/plain.rsa-ed.eml" pass)
dkim=pass header.d=example.test header.s=rsa header.b=$(bpref \
	"$D/plain.rsa-ed.eml" 2)" verify "$D/plain.rsa-ed.eml"
check "keys were asked from dnsmasq (TXT r2048._domainkey.example.test)" \
	grep -q 'query\[TXT\] r2048._domainkey.example.test' "$DNS_LOG"

done_testing
