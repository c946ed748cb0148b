#!/bin/bash
# test_relay_checks.sh - ferry-relay's SPF and DKIM verdicts end to end:
# client (python smtplib) -> ferry-relay -> smtp-sink, with a dnsmasq on
# 127.0.0.1 serving the SPF records and the DKIM keys ([checks] dns).
#   spf = tag: pass, fail, softfail, none and temperror (an include: that
#       never answers) each arrive with the right spf= in ONE
#       Authentication-Results field of ours, first in the header, before
#       our Received:; the rest of the message is unchanged;
#   dkim = tag: rsa-sha256 and ed25519-sha256 signatures made here with
#       libopendkim pass (header.d, header.s, the first 8 of b=), a body
#       altered after signing is dkim=fail, an unsigned message
#       dkim=none; the forwarded messages still verify at the sink
#       (dkim_tool verify against the same DNS);
#   forged Authentication-Results: one with our authserv-id is removed,
#       two (one folded, one in other case) are both removed, one of
#       another authserv-id is kept as it was;
#   spf = reject-fail: fail -> 550 5.7.23, temperror -> 451 4.7.0 (never
#       a permanent refusal), pass and softfail accepted; nothing refused
#       reaches the sink; a redirect= beside -all is ignored (RFC 7208
#       6.1), so a sender it would have let through gets 550.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink dnsmasq openssl "$LIB_PYTHON"
TOOL=$top_builddir/tests/integration/dkim_tool
[ -x "$TOOL" ] || { echo "Bail out! $TOOL not built"; exit 1; }

plan 35

M=$T/msg
STATE=$T/state
STATE2=$T/state2
PORT=$(free_port)
PORT2=$(free_port)
mkdir -p "$M" "$STATE" "$STATE2"
RELAY_LOG=$T/log/relay.log

# tool ARG... - dkim_tool, killed if it hangs
tool() {
	timeout -k 5 30 "$TOOL" "$@"
}

# --- python helpers (smtp_send.py: tests/integration/data) -----------------

# ar.py MODE AUTHSERV < MESSAGE (LF) - the Authentication-Results fields:
#   ours     the first field must be the only A-R claiming AUTHSERV and
#            the second our Received: (naming AUTHSERV); print that A-R
#            normalised: comments dropped, values unquoted, folding and
#            blanks collapsed, resinfos joined by "; ", e.g.
#            "relay.test; spf=pass smtp.mailfrom=pass.test; dkim=none"
#   others   print every other A-R field raw, unfolded, one a line
#   rest     print the message without its first two fields
cat >"$T/ar.py" <<'EOF'
import re, sys
mode, ours = sys.argv[1], sys.argv[2].lower()
msg = sys.stdin.buffer.read().decode("utf-8", "replace")
head, sep, body = msg.partition("\n\n")
fields = []                        # [name, raw text with folds]
for line in head.split("\n"):
    if line[:1] in (" ", "\t") and fields:
        fields[-1][1] += "\n" + line
    else:
        fields.append([line.split(":", 1)[0], line])

def value(raw):
    return raw.split(":", 1)[1] if ":" in raw else ""

def uncomment(v):
    out, depth, q, esc = [], 0, False, False
    for c in v:
        if esc:
            esc = False
            if depth == 0: out.append(c)
            continue
        if c == "\\":
            esc = True
            if depth == 0: out.append(c)
            continue
        if q:
            out.append(c)
            if c == '"': q = False
            continue
        if c == "(":
            depth += 1; continue
        if c == ")" and depth:
            depth -= 1; continue
        if depth: continue
        if c == '"': q = True
        out.append(c)
    return "".join(out)

def unquote(tok):
    m = re.match(r'^([^=]*=)"(.*)"$', tok) or re.match(r'^()"(.*)"$', tok)
    if not m:
        return tok
    return m.group(1) + re.sub(r"\\(.)", r"\1", m.group(2))

def split_semi(v):
    parts, cur, q, esc = [], [], False, False
    for c in v:
        if esc: cur.append(c); esc = False; continue
        if c == "\\": cur.append(c); esc = True; continue
        if c == '"': q = not q
        if c == ";" and not q:
            parts.append("".join(cur)); cur = []; continue
        cur.append(c)
    parts.append("".join(cur))
    return parts

def tokens(v):
    return re.findall(r'(?:[^\s"]|"(?:\\.|[^"\\])*")+', v)

def norm(raw):
    v = uncomment(value(raw))
    res = []
    for p in split_semi(v):
        t = [unquote(x) for x in tokens(p)]
        if t:
            res.append(" ".join(t))
    return "; ".join(res)

def authserv(raw):
    t = tokens(uncomment(value(raw)).split(";")[0])
    return unquote(t[0]).lower().rstrip(".") if t else ""

ar = [i for i, f in enumerate(fields) if f[0].lower() == "authentication-results"]
mine = [i for i in ar if authserv(fields[i][1]) == ours]
if mode == "ours":
    if mine != [0]:
        sys.exit("A-R fields of %s at positions %s (want exactly [0]); header starts %r"
                 % (ours, mine, [f[0] for f in fields[:4]]))
    if len(fields) < 2 or fields[1][0] != "Received" or ours not in fields[1][1].lower():
        sys.exit("the second field is not our Received: %r" % (fields[1][1][:80] if len(fields) > 1 else None))
    print(norm(fields[0][1]))
elif mode == "others":
    for i in ar:
        if i not in mine:
            print(" ".join(fields[i][1].split()))
elif mode == "rest":
    sys.stdout.write("\n".join(f[1] for f in fields[2:]) + sep + body)
EOF

# mk NAME FROM [HEADER...] - a message $M/NAME.eml (LF) with its own
# Message-ID and an X-Case: NAME field; extra header fields (may hold
# "\n\t" folds) come after Subject:
mk() {
	local name=$1 from=$2
	shift 2
	"$LIB_PYTHON" - "$M/$name.eml" "$name" "$from" "$@" <<'EOF'
import sys
path, name, sender = sys.argv[1:4]
extra = [h.replace("\\n", "\n").replace("\\t", "\t") for h in sys.argv[4:]]
lines = ["From: <%s>" % sender, "To: <bob@example.net>",
         "Subject: check case %s" % name] + extra + [
         "Date: Mon, 23 Nov 2026 10:00:00 +0000",
         "Message-ID: <%s@checks.test>" % name, "X-Case: %s" % name, "",
         "Hello Bob,", ""] + ["line %02d of case %s: the quick brown fox jumps over the lazy dog"
                              % (i, name) for i in range(40)] + [".a dot line", "bye"]
open(path, "w").write("\n".join(lines) + "\n")
EOF
}

# sign KEY SELECTOR NAME - sign $M/NAME.eml in place (d=example.test)
sign() {
	tool sign -k "$1" -s "$2" -d example.test "$M/$3.eml" >"$M/$3.signed" &&
		mv "$M/$3.signed" "$M/$3.eml"
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

# send [-p PORT] FROM RCPTS NAME - send $M/NAME.eml; print the outcome
send() {
	local port=$PORT
	if [ "$1" = -p ]; then
		port=$2
		shift 2
	fi
	"$LIB_PYTHON" "$TEST_DATA/smtp_send.py" "$port" "$1" "$2" "$M/$3.eml" | tail -n 1
}

# sink_file NAME [SECS] - the one dump file of case NAME, complete: when
# sent_ok saw its queue id, only once a relay logged it sent (smtp-sink
# writes the file while the message streams in)
sink_file() {
	local i f n id=
	[ -s "$M/$1.id" ] && id=$(cat "$M/$1.id")
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		if [ -n "$id" ] &&
			! grep -q "$id: to=.* status=sent" "$T"/log/relay*.log; then
			sleep 0.1
			continue
		fi
		f=$(grep -l -x "X-Case: $1" "$SINK_DIR"/msg.* 2>/dev/null)
		n=$(printf '%s' "$f" | grep -c .)
		if [ "$n" -eq 1 ]; then
			printf '%s\n' "$f"
			return 0
		fi
		[ "$n" -gt 1 ] && { echo "case $1 arrived $n times" >&2; return 1; }
		sleep 0.1
	done
	echo "case $1 did not arrive" >&2
	return 1
}

# ours NAME - our A-R of case NAME as it arrived, normalised
ours() {
	local f
	f=$(sink_file "$1") || return 1
	sink_message "$f" | "$LIB_PYTHON" "$T/ar.py" ours relay.test
}

# sent_ok NAME FROM - the relay answered 250 at the end of DATA
sent_ok() {
	local r
	r=$(send "$2" bob@example.net "$1")
	echo "$r"
	sed -n 's/^DATA 250 .*queued as \([0-9a-f]\{16\}\).*/\1/p' <<<"$r" \
		>"$M/$1.id"
	case $r in "DATA 250 "*) return 0 ;; esac
	return 1
}

# verify_at_sink NAME - dkim_tool's verdicts on what reached the sink
verify_at_sink() {
	local f
	f=$(sink_file "$1") || return 1
	sink_message "$f" >"$M/$1.arrived"
	tool verify -S "127.0.0.1:$DNS_PORT" -t 3000 "$M/$1.arrived"
	[ $? -le 1 ]
}

# unchanged NAME [EXPECTED] - the arrived message minus our two fields
# is the sent one (or EXPECTED), byte for byte (LF)
unchanged() {
	local f want=${2:-$M/$1.eml}
	f=$(sink_file "$1") || return 1
	sink_message "$f" | "$LIB_PYTHON" "$T/ar.py" rest relay.test \
		>"$M/$1.rest" || return 1
	tr -d '\r' <"$want" >"$M/$1.want"
	cmp "$M/$1.want" "$M/$1.rest" || {
		diff "$M/$1.want" "$M/$1.rest" | head -n 20
		return 1
	}
}

# --- keys, DNS, sink, relay -------------------------------------------------

check "keys (openssl): RSA-2048 and Ed25519" eval \
	'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$M/rsa.key" 2>/dev/null &&
	openssl genpkey -algorithm ed25519 -out "$M/ed.key"'
RSA_REC=$(tool pubkey -k "$M/rsa.key")
ED_REC=$(tool pubkey -k "$M/ed.key")

check "dnsmasq serves SPF records and DKIM keys" start_dns <<EOF
TXT pass.test "v=spf1 ip4:127.0.0.1 -all"
TXT fail.test "v=spf1 ip4:192.0.2.0/24 -all"
TXT soft.test "v=spf1 ip4:192.0.2.0/24 ~all"
TXT nospf.test "site-verification=abc"
TXT incslow.test "v=spf1 include:slow.test -all"
TXT redirall.test "v=spf1 ip4:192.0.2.1 redirect=pass.test -all"
TIMEOUT slow.test
TXT example.test "v=spf1 ip4:127.0.0.1 -all"
TXT r2048._domainkey.example.test "$RSA_REC"
TXT e1._domainkey.example.test "$ED_REC"
EOF

start_smtp_sink || exit 1

# relay_conf FILE STATE PORT SPF - a relay configuration
relay_conf() {
	cat >"$1" <<EOF
[global]
state_dir = $2
[relay]
listen = 127.0.0.1:$3
hostname = relay.test
domains = example.net
[forward]
upstream = 127.0.0.1:$SINK_PORT
tls = none
retry_initial = 1s
retry_max = 2s
[checks]
dns = 127.0.0.1:$DNS_PORT
dns_timeout = 2s
spf = $4
dkim = tag
authserv_id = relay.test
[control]
socket = $2/control.sock
http =
EOF
}
relay_conf "$T/relay.conf" "$STATE" "$PORT" tag
spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
RELAY_PID=$SPAWN_PID
check "ferry-relay starts (spf = tag, dkim = tag)" wait_port "$PORT" 10

# --- SPF under tag ----------------------------------------------------------

mk spfpass a@pass.test
mk spffail a@fail.test
mk spfsoft a@soft.test
mk spfnone a@nospf.test
mk spftemp a@incslow.test
check "five SPF cases accepted under tag" eval \
	'sent_ok spfpass a@pass.test && sent_ok spffail a@fail.test &&
	sent_ok spfsoft a@soft.test && sent_ok spfnone a@nospf.test &&
	sent_ok spftemp a@incslow.test'
check_output "spf=pass" "relay.test; spf=pass smtp.mailfrom=pass.test; dkim=none" \
	ours spfpass
check_output "spf=fail (tagged, not refused)" \
	"relay.test; spf=fail smtp.mailfrom=fail.test; dkim=none" ours spffail
check_output "spf=softfail" \
	"relay.test; spf=softfail smtp.mailfrom=soft.test; dkim=none" ours spfsoft
check_output "spf=none (TXT records, no SPF)" \
	"relay.test; spf=none smtp.mailfrom=nospf.test; dkim=none" ours spfnone
check_output "spf=temperror (include: that never answers)" \
	"relay.test; spf=temperror smtp.mailfrom=incslow.test; dkim=none" \
	ours spftemp
check "an untouched message apart from our A-R and Received:" unchanged spfpass

# --- DKIM -------------------------------------------------------------------

mk dkrsa alice@example.test
mk dked alice@example.test
mk dkbody alice@example.test
mk dkboth alice@example.test
check "messages signed with libopendkim (rsa-sha256, ed25519-sha256)" eval \
	'sign "$M/rsa.key" r2048 dkrsa && sign "$M/ed.key" e1 dked &&
	sign "$M/rsa.key" r2048 dkbody && sign "$M/rsa.key" r2048 dkboth &&
	sign "$M/ed.key" e1 dkboth'
# the body altered after signing
sed -i 's/line 07 of case dkbody: the quick/line 07 of case dkbody: a quick/' \
	"$M/dkbody.eml"
check "signed messages accepted" eval \
	'sent_ok dkrsa alice@example.test && sent_ok dked alice@example.test &&
	sent_ok dkbody alice@example.test && sent_ok dkboth alice@example.test'
check_output "rsa-sha256: dkim=pass with header.d, header.s, header.b" \
	"relay.test; spf=pass smtp.mailfrom=example.test; dkim=pass header.d=example.test header.s=r2048 header.b=$(bpref "$M/dkrsa.eml")" \
	ours dkrsa
check_output "ed25519-sha256: dkim=pass" \
	"relay.test; spf=pass smtp.mailfrom=example.test; dkim=pass header.d=example.test header.s=e1 header.b=$(bpref "$M/dked.eml")" \
	ours dked
check_output "body altered after signing: dkim=fail" \
	"relay.test; spf=pass smtp.mailfrom=example.test; dkim=fail header.d=example.test header.s=r2048 header.b=$(bpref "$M/dkbody.eml")" \
	ours dkbody
check_output "two signatures: two dkim results in one field, in order" \
	"relay.test; spf=pass smtp.mailfrom=example.test; dkim=pass header.d=example.test header.s=e1 header.b=$(bpref "$M/dkboth.eml"); dkim=pass header.d=example.test header.s=r2048 header.b=$(bpref "$M/dkboth.eml" 2)" \
	ours dkboth
check "signed message forwarded byte for byte (below our two fields)" \
	unchanged dkrsa
check_output "rsa: still verifies at the sink" \
	"dkim=pass header.d=example.test header.s=r2048 header.b=$(bpref "$M/dkrsa.eml")" \
	verify_at_sink dkrsa
check_output "ed25519: still verifies at the sink" \
	"dkim=pass header.d=example.test header.s=e1 header.b=$(bpref "$M/dked.eml")" \
	verify_at_sink dked
check_output "altered body: still fails at the sink" \
	"dkim=fail header.d=example.test header.s=r2048 header.b=$(bpref "$M/dkbody.eml") (body hash mismatch)" \
	verify_at_sink dkbody
check "keys were asked from our dnsmasq" \
	grep -q 'query\[TXT\] r2048._domainkey.example.test' "$DNS_LOG"

# --- forged Authentication-Results ------------------------------------------

FORGED='Authentication-Results: relay.test; spf=pass smtp.mailfrom=bank.test; dkim=pass header.d=bank.test'
FOLDED='Authentication-Results:\n\trelay.test;\n\tdkim=pass header.d=bank.test'
UPPER='Authentication-Results: RELAY.TEST. ; spf=pass smtp.mailfrom=bank.test'
FOREIGN='Authentication-Results: mx.other.test;\n\tspf=fail smtp.mailfrom=bank.test'
mk forge1 a@pass.test "$FORGED"
mk forge2 a@pass.test "$FOLDED" "X-Between: 1" "$UPPER"
mk foreign a@pass.test "$FOREIGN" "$FORGED"
# what must arrive: the same messages without the forged fields
mk forge1.want a@pass.test
mk forge2.want a@pass.test "X-Between: 1"
mk foreign.want a@pass.test "$FOREIGN"
sed -i 's/forge1\.want/forge1/; s/forge2\.want/forge2/; s/foreign\.want/foreign/' \
	"$M/forge1.want.eml" "$M/forge2.want.eml" "$M/foreign.want.eml"
check "messages with forged A-R fields accepted" eval \
	'sent_ok forge1 a@pass.test && sent_ok forge2 a@pass.test &&
	sent_ok foreign a@pass.test'
check_output "one forged A-R of ours: removed, ours alone and first" \
	"relay.test; spf=pass smtp.mailfrom=pass.test; dkim=none" ours forge1
check "one forged A-R: nothing else changed" unchanged forge1 \
	"$M/forge1.want.eml"
check_output "two forged (folded; upper case with a dot): both removed" \
	"relay.test; spf=pass smtp.mailfrom=pass.test; dkim=none" ours forge2
check "two forged: nothing else changed" unchanged forge2 "$M/forge2.want.eml"
foreign_kept() {
	local f
	f=$(sink_file foreign) || return 1
	sink_message "$f" | "$LIB_PYTHON" "$T/ar.py" others relay.test
}
check_output "an A-R of another authserv-id is kept" \
	"Authentication-Results: mx.other.test; spf=fail smtp.mailfrom=bank.test" \
	foreign_kept
check "foreign kept, forged removed, the rest unchanged" unchanged foreign \
	"$M/foreign.want.eml"
check "the removal is logged" grep -q 'naming us' "$RELAY_LOG"

# --- spf = reject-fail -------------------------------------------------------

relay_conf "$T/relay2.conf" "$STATE2" "$PORT2" reject-fail
spawn relay2 "$FERRY_RELAY" -d -c "$T/relay2.conf"
check "a second ferry-relay starts (spf = reject-fail)" wait_port "$PORT2" 10
n0=$(sink_count)
mk rjfail a@fail.test
mk rjtemp a@incslow.test
mk rjpass a@pass.test
mk rjsoft a@soft.test
check_output "SPF fail: 550 5.7.23" 550 eval \
	'r=$(send -p "$PORT2" a@fail.test bob@example.net rjfail); echo "$r" >&2;
	case $r in *" 550 5.7.23"*) echo 550 ;; *) echo "$r" ;; esac'
mk rjredir a@redirall.test
check_output "SPF redirect= beside -all ignored: fail, 550 5.7.23" 550 eval \
	'r=$(send -p "$PORT2" a@redirall.test bob@example.net rjredir); echo "$r" >&2;
	case $r in *" 550 5.7.23"*) echo 550 ;; *) echo "$r" ;; esac'
check_output "SPF temperror: 451 4.7.0, never a 5xx" 451 eval \
	'r=$(send -p "$PORT2" a@incslow.test bob@example.net rjtemp); echo "$r" >&2;
	case $r in *" 451 4.7.0"*) echo 451 ;; *) echo "$r" ;; esac'
check "SPF pass and softfail: accepted and delivered" eval \
	'r=$(send -p "$PORT2" a@pass.test bob@example.net rjpass); echo "$r";
	case $r in "DATA 250 "*) ;; *) false ;; esac &&
	r=$(send -p "$PORT2" a@soft.test bob@example.net rjsoft) && echo "$r" &&
	case $r in "DATA 250 "*) ;; *) false ;; esac &&
	sink_file rjpass >/dev/null && sink_file rjsoft >/dev/null'
check "the refused messages never reached the sink" eval \
	'sleep 1; ! grep -l -x -e "X-Case: rjfail" -e "X-Case: rjtemp" -e "X-Case: rjredir" "$SINK_DIR"/msg.* 2>/dev/null'

done_testing
