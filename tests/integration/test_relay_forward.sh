#!/bin/bash
# test_relay_forward.sh - ferry-relay's delivery side against real
# servers: smtp-source -> ferry-relay -> smtp-sink.
#   (a) 1,000 messages arrive byte-identical apart from our Received:
#       header, each exactly once (unique Message-IDs, same envelope), and
#       hand-made messages (dot lines, 8-bit, long lines, a big one)
#       arrive byte for byte;
#   (e) the first upstream is a dead port: everything goes to the second;
#   (d) copy_to gets its own copy; copy_to down does not hold up the
#       upstream, its copies wait and follow when it is back;
#   (b) the upstream answers 4xx for a while (smtp-sink -r RCPT): the
#       messages are deferred, ferryctl queue and /metrics show them,
#       they are delivered once it recovers;
#   (c) the upstream answers 5xx (smtp-sink -f RCPT): the sender gets an
#       RFC 3464 DSN at dsn_relay, a <> sender gets none, nothing stays
#       queued;
#   (f) tls = require: a verified STARTTLS session to a ferry-relay with
#       a test certificate, found by name through DNS; an upstream without
#       STARTTLS or with a certificate for another name gets nothing;
#   and a clean exit on SIGTERM.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink smtp-source swaks mdb_stat curl openssl dnsmasq "$LIB_PYTHON"

STATE=$T/state
PORT=$(free_port)
HTTP_PORT=$(free_port)
DEAD_PORT=$(free_port)		# nothing ever listens there
mkdir -p "$STATE"

SINK_NAME=main start_smtp_sink || exit 1
SINK_NAME=copy start_smtp_sink || exit 1
SINK_NAME=dsn start_smtp_sink || exit 1

cat >"$T/relay.conf" <<EOF
[global]
state_dir = $STATE
[relay]
listen = 127.0.0.1:$PORT
hostname = relay.test
domains = example.test
[forward]
upstream = 127.0.0.1:$DEAD_PORT, 127.0.0.1:$SINK_PORT_main
copy_to = 127.0.0.1:$SINK_PORT_copy
dsn_relay = 127.0.0.1:$SINK_PORT_dsn
tls = none
concurrency = 5
connect_timeout = 2s
retry_initial = 1s
retry_max = 2s
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[control]
socket = $T/control.sock
http = 127.0.0.1:$HTTP_PORT
EOF

RELAY_LOG=$T/log/relay.log

# count NAME - messages in one sink's dump directory (smtp-sink leaves an
# empty file behind for a transaction it refused)
count() {
	local v=SINK_DIR_$1
	find "${!v}" -maxdepth 1 -name 'msg.*' -type f -size +0 2>/dev/null |
		wc -l
}

# wait_count NAME N SECS - until sink NAME holds at least N messages
wait_count() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "sink $1: $(count "$1") messages after $3 s, wanted $2" >&2
	return 1
}

# queue_count - messages in the relay's queue (ferryctl, or LMDB itself)
queue_count() {
	if [ -x "$FERRYCTL" ]; then
		"$FERRYCTL" -c "$T/relay.conf" --json queue |
			"$LIB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["count"])'
	else
		mdb_stat -s queue "$STATE/db" | awk '/Entries:/ { print $2 }'
	fi
}

# wait_queue N SECS - until the queue holds exactly N messages
wait_queue() {
	local i n
	for ((i = 0; i < $2 * 10; i++)); do
		n=$(queue_count 2>/dev/null) && [ "$n" = "$1" ] && return 0
		sleep 0.1
	done
	echo "queue: ${n:-?} messages after $2 s, wanted $1" >&2
	return 1
}

# spool_empty - no spool file left behind
spool_empty() {
	[ -z "$(ls -A "$STATE/spool/queue" 2>/dev/null)" ]
}

# metric NAME - one counter from GET /metrics
metric() {
	curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
		awk -v n="$1" '$1 == n { print $2; found = 1 } END { exit !found }'
}

# log_count REGEX - matching lines in the relay's log so far
log_count() {
	grep -cE "$1" "$RELAY_LOG" || true
}

# send N [smtp-source options...] - N messages of 4 KB through the relay
send() {
	local n=$1
	shift
	smtp-source -m "$n" -s 5 -l 4096 -f a@x.test -t b@example.test "$@" \
		"127.0.0.1:$PORT"
}

restart_sink() {
	local name=$1
	shift
	stop_smtp_sink "$name"
	SINK_NAME=$name start_smtp_sink "$@"
}

# compare.py - check dump files against what was sent.
#   compare.py ref REFDIR             print the reference (body+headers
#                                     without Date:/Message-Id:) of the
#                                     one message in REFDIR
#   compare.py bulk DIR REFFILE N     N messages, each our Received: +
#                                     the reference, unique Message-Ids
#   compare.py exact DIR REFDIR       every message in REFDIR (sent
#                                     straight to a sink) arrived in DIR
#                                     once, the same byte for byte
cat >"$T/compare.py" <<'EOF'
import hashlib, os, re, sys

def dump(path):
    """(envelope lines, message bytes) of one smtp-sink dump file."""
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    env, i = [], 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        env.append(lines[i]); i += 1
    # smtp-sink's own three-line Received: header
    assert lines[i].startswith(b"Received: "), path
    i += 3
    msg = b"\n".join(lines[i:])
    # the dump ends with the message's last line end plus one empty line
    assert msg.endswith(b"\n\n") or msg == b"\n", path
    return env, msg[:-1]

def strip_ours(msg, path):
    """Remove our Received: header (the first one, with continuations)."""
    lines = msg.split(b"\n")
    if not lines[0].startswith(b"Received: ") or b"relay.test" not in msg.split(b"\n\n")[0]:
        sys.exit("%s: no Received: header of ours first" % path)
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\n".join(lines[i:])

def canon(msg):
    head, sep, body = msg.partition(b"\n\n")
    keep = [l for l in head.split(b"\n")
            if not re.match(rb"(?i)(date|message-id):", l)]
    return b"\n".join(keep) + sep + body

def files(d):
    # smtp-sink leaves an empty file for a refused transaction
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.startswith("msg.") and os.path.getsize(os.path.join(d, f)) > 0)

mode = sys.argv[1]
if mode == "ref":
    (f,) = files(sys.argv[2])
    sys.stdout.buffer.write(canon(dump(f)[1]))
elif mode == "bulk":
    ref = open(sys.argv[3], "rb").read()
    want = int(sys.argv[4])
    ids, bad = {}, 0
    fs = files(sys.argv[2])
    for f in fs:
        env, msg = dump(f)
        if env.count(b"X-Rcpt-Args: <b@example.test>") != 1 or \
           not any(e.startswith(b"X-Mail-Args: <a@x.test>") for e in env):
            print("%s: wrong envelope %r" % (f, env)); bad += 1; continue
        msg = strip_ours(msg, f)
        if canon(msg) != ref:
            print("%s: content differs" % f); bad += 1; continue
        m = re.search(rb"(?im)^message-id: *(<[^>]*>)", msg.split(b"\n\n")[0])
        if not m:
            print("%s: no Message-Id" % f); bad += 1; continue
        ids[m.group(1)] = ids.get(m.group(1), 0) + 1
    dups = [k for k, v in ids.items() if v > 1]
    print("files %d, unique ids %d, duplicates %d, bad %d" %
          (len(fs), len(ids), len(dups), bad))
    sys.exit(0 if len(fs) == want and len(ids) == want and not dups and not bad else 1)
elif mode == "exact":
    case = lambda msg: re.search(rb"(?m)^X-Case: (\S+)", msg)
    got = {}
    for f in files(sys.argv[2]):
        env, msg = dump(f)
        m = case(msg)
        if m:
            got.setdefault(m.group(1), []).append(strip_ours(msg, f))
    rc, n = 0, 0
    for f in files(sys.argv[3]):
        want = dump(f)[1]
        name = case(want).group(1)
        msgs = got.get(name, [])
        n += 1
        if len(msgs) != 1:
            print("%s: arrived %d times" % (name, len(msgs))); rc = 1
        elif msgs[0] != want:
            print("%s: differs (%d bytes direct, %d relayed; sha256 %s / %s)" % (
                name, len(want), len(msgs[0]), hashlib.sha256(want).hexdigest()[:12],
                hashlib.sha256(msgs[0]).hexdigest()[:12])); rc = 1
    print("%d cases compared" % n)
    sys.exit(rc if n > 0 else 1)
EOF

# The hand-made messages: what smtp-source -F sends (every line gets a
# CRLF, dot-stuffed on the wire) must come out unchanged.
"$LIB_PYTHON" - "$T/cases" <<'EOF'
import os, sys
d = sys.argv[1]
os.makedirs(d)
hdr = lambda n: "From: <a@x.test>\nTo: <b@example.test>\nSubject: case %s\nX-Case: %s\n" % (n, n)
cases = {
    "dots": hdr("dots") + "\n.\n..\n...leading dots\n. space\nend\n.\n",
    "eightbit": hdr("eightbit") + "Content-Type: text/plain; charset=utf-8\n\n"
        + "Gr\u00fc\u00dfe, \u00e7a va? \u65e5\u672c\n" * 20,
    "long": hdr("long") + "\n" + ("x" * 990 + "\n") * 30 + ".\n",
    "empty": hdr("empty") + "\n",
    "big": hdr("big") + "\n" + "".join(
        "%s%06d the quick brown fox jumps over the lazy dog\n" % ("." if i % 9 == 0 else "", i)
        for i in range(6000)),
}
for name, text in cases.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(text.encode("utf-8"))
EOF

# The reference for the bulk run: one message smtp-source makes with the
# same options, sent straight to a private sink.
SINK_NAME=ref start_smtp_sink || exit 1
smtp-source -m 1 -l 4096 -f a@x.test -t b@example.test \
	"127.0.0.1:$SINK_PORT_ref" && wait_count ref 1 5 &&
	"$LIB_PYTHON" "$T/compare.py" ref "$SINK_DIR_ref" >"$T/reference" ||
	{ echo "cannot make the reference message" >&2; exit 1; }
stop_smtp_sink ref
# ... and the hand-made cases, as smtp-source -F delivers them directly
# (it adds an empty line at the end: the relay must pass that on too).
SINK_NAME=refcases start_smtp_sink || exit 1
for c in dots eightbit long empty big; do
	smtp-source -m 1 -F "$T/cases/$c" -f a@x.test -t b@example.test \
		"127.0.0.1:$SINK_PORT_refcases" ||
		{ echo "smtp-source -F $c failed" >&2; exit 1; }
done
wait_count refcases 5 10 || exit 1
stop_smtp_sink refcases

# Conditions the checks below wait for (run in this shell by check).
drained() {
	wait_queue 0 15 && spool_empty
}
copies_caught_up() {
	wait_count copy $((copy0 + 10)) 20 && drained
}
deferred_logged() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(log_count 'status=deferred \(450 ')" -ge 5 ] && return 0
		sleep 0.1
	done
	return 1
}
metrics_deferred() {
	local n
	n=$(metric mailferry_relay_deferred_total) || return 1
	echo "deferred_total $n (before: $deferred0)"
	[ "$n" -ge $((deferred0 + 5)) ]
}
upstream_caught_up() {
	wait_count main $((main0 + 5)) 20 && drained &&
		[ "$(count main)" -eq $((main0 + 5)) ]
}
no_dsn_for_null_sender() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(log_count 'no DSN: the sender is <>')" -ge 1 ] && break
		sleep 0.1
	done
	[ "$(log_count 'no DSN: the sender is <>')" -ge 1 ] && drained &&
		sleep 1 && [ "$(count dsn)" -eq $((dsn0 + 1)) ]
}

cat >"$T/dsn_check.py" <<'EOF'
import os, re, sys
d = sys.argv[1]
fs = sorted((os.path.getmtime(os.path.join(d, f)), f) for f in os.listdir(d))
data = open(os.path.join(d, fs[-1][1]), "rb").read().decode("utf-8", "replace")
need = [
    r"(?m)^X-Mail-Args: <>",
    r"(?m)^X-Rcpt-Args: <sender@origin\.test>$",
    r"(?m)^From: .*MAILER-DAEMON@relay\.test",
    r"(?m)^To: <sender@origin\.test>$",
    r"(?m)^Auto-Submitted: auto-replied$",
    r"(?m)^Content-Type: multipart/report; report-type=delivery-status;",
    r"(?m)^Content-Type: message/delivery-status$",
    r"(?m)^Reporting-MTA: dns; relay\.test$",
    r"(?m)^Final-Recipient: rfc822; nobody@example\.test$",
    r"(?m)^Action: failed$",
    r"(?m)^Status: 5\.\d+\.\d+$",
    r"(?m)^Diagnostic-Code: smtp; 5\d\d ",
    r"(?m)^Content-Type: text/rfc822-headers$",
    r"(?m)^Message-Id: <bounce-me@origin\.test>$",
]
bad = [n for n in need if not re.search(n, data)]
for n in bad:
    print("missing:", n)
sys.exit(1 if bad else 0)
EOF

plan 27

spawn relay "$FERRY_RELAY" -d -c "$T/relay.conf"
RELAY_PID=$SPAWN_PID
check "ferry-relay starts" wait_port "$PORT" 10

# (a) + (e): 1,000 messages; the first upstream is a dead port
check "1,000 messages from smtp-source are accepted" \
	smtp-source -m 1000 -s 10 -l 4096 -f a@x.test -t b@example.test \
	"127.0.0.1:$PORT"
check "all 1,000 reach the upstream sink (via the second upstream)" \
	wait_count main 1000 60
check "then nothing stays queued: queue and spool empty" drained
check "each exactly once, byte-identical apart from our Received:" \
	"$LIB_PYTHON" "$T/compare.py" bulk "$SINK_DIR_main" "$T/reference" 1000
check "copy_to got its own 1,000 copies, identical too" \
	"$LIB_PYTHON" "$T/compare.py" bulk "$SINK_DIR_copy" "$T/reference" 1000
for c in dots eightbit long empty big; do
	smtp-source -m 1 -F "$T/cases/$c" -f a@x.test -t b@example.test \
		"127.0.0.1:$PORT" || echo "smtp-source -F $c failed" >&2
done
wait_count main 1005 20 && drained
check "dot lines, 8-bit text, 990-byte lines, an empty body, 300 KB: byte for byte" \
	"$LIB_PYTHON" "$T/compare.py" exact "$SINK_DIR_main" "$SINK_DIR_refcases"
check_output "no delivery was logged for the dead upstream" 0 \
	log_count "relay=127\\.0\\.0\\.1:$DEAD_PORT "
check "the dead upstream was tried first, then the second used" \
	grep -qE "upstream: connected to 127\\.0\\.0\\.1:$SINK_PORT_main \\(no TLS\\) after: connect to 127\\.0\\.0\\.1:$DEAD_PORT: Connection refused" \
	"$RELAY_LOG"

# (d): copy_to down does not hold the upstream up
main0=$(count main)
copy0=$(count copy)
stop_smtp_sink copy
check "10 messages accepted while copy_to is down" send 10
check "the upstream gets them all the same" wait_count main $((main0 + 10)) 15
check "ferryctl queue shows the 10 waiting for copy_to" wait_queue 10 10
SINK_NAME=copy start_smtp_sink || exit 1
check "copy_to back: its 10 copies follow, the queue empties" copies_caught_up

# (b): the upstream answers 4xx for a while
main0=$(count main)
restart_sink main -r RCPT || exit 1
deferred0=$(metric mailferry_relay_deferred_total) || deferred0=0
check "5 messages accepted while the upstream answers 450" send 5
check "they are deferred (450 in the log)" deferred_logged
check "ferryctl queue shows them meanwhile" wait_queue 5 10
check "/metrics counts the deferrals" metrics_deferred
restart_sink main || exit 1
check "upstream recovered: all 5 delivered once, queue empty" \
	upstream_caught_up

# (c): the upstream answers 5xx
restart_sink main -f RCPT || exit 1
dsn0=$(count dsn)
check "a message to a recipient the upstream refuses is accepted" \
	swaks --silent 2 --server "127.0.0.1:$PORT" \
	--from sender@origin.test --to nobody@example.test \
	--header "Message-Id: <bounce-me@origin.test>"
check "5xx: the sender gets a DSN (at dsn_relay)" \
	wait_count dsn $((dsn0 + 1)) 15
check "the DSN is an RFC 3464 report: recipient, status, reply, original headers" \
	"$LIB_PYTHON" "$T/dsn_check.py" "$SINK_DIR_dsn"
swaks --silent 2 --server "127.0.0.1:$PORT" --from '<>' \
	--to nobody2@example.test >/dev/null 2>&1
check "a <> sender gets no DSN; nothing stays queued" no_dsn_for_null_sender

# (f): STARTTLS to the upstream.  Relay B (ferry-relay with a test
# certificate for mx.example.test) relays to the main sink; relays A
# reach B with tls = require and the test CA, by name through DNS.
restart_sink main || exit 1
make_cert mx.example.test >/dev/null 2>&1 || exit 1
start_dns <<EOF || exit 1
A mx.example.test 127.0.0.1
A wrong.example.test 127.0.0.1
EOF
B_PORT=$(free_port)
mkdir -p "$T/state-b"
cat >"$T/relay-b.conf" <<EOF
[global]
state_dir = $T/state-b
[relay]
listen = 127.0.0.1:$B_PORT
hostname = mx.example.test
domains = example.test
tls_cert = $T/pki/mx.example.test.pem
tls_key = $T/pki/mx.example.test.key
[forward]
upstream = 127.0.0.1:$SINK_PORT_main
tls = none
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[control]
socket = $T/control-b.sock
http = 127.0.0.1:$(free_port)
EOF
spawn relay-b "$FERRY_RELAY" -d -c "$T/relay-b.conf"
wait_port "$B_PORT" 10 || exit 1

# start_tls_relay NAME UPSTREAM - a relay A with tls = require
start_tls_relay() {
	local name=$1 port
	port=$(free_port)
	mkdir -p "$T/state-$name"
	cat >"$T/relay-$name.conf" <<EOF
[global]
state_dir = $T/state-$name
[relay]
listen = 127.0.0.1:$port
hostname = relay.test
domains = example.test
[forward]
upstream = $2
tls = require
ca_file = $TEST_CA
retry_initial = 1s
retry_max = 2s
[checks]
dns = 127.0.0.1:$DNS_PORT
[control]
socket = $T/control-$name.sock
http = 127.0.0.1:$(free_port)
EOF
	spawn "relay-$name" "$FERRY_RELAY" -d -c "$T/relay-$name.conf"
	wait_port "$port" 10 || return 1
	swaks --silent 2 --server "127.0.0.1:$port" --from a@x.test \
		--to tls@example.test --header "X-Case: tls-$name"
}

# sink_has CASE - the main sink holds the message "X-Case: CASE"
sink_has() {
	grep -lq "^X-Case: $1\$" "$SINK_DIR_main"/msg.* 2>/dev/null
}
tls_delivered() {
	local i
	for ((i = 0; i < 100; i++)); do
		sink_has tls-ok && break
		sleep 0.1
	done
	sink_has tls-ok &&
		grep -E "upstream: connected to mx\.example\.test:$B_PORT \(TLSv1\.[23] .* verified\)" \
		"$T/log/relay-ok.log"
}
tls_refused() {
	local i log=$T/log/relay-bad.log
	for ((i = 0; i < 100; i++)); do
		grep -q 'status=deferred' "$log" && break
		sleep 0.1
	done
	grep 'status=deferred' "$log" | head -n 1
	grep -q "127\\.0\\.0\\.1:$SINK_PORT_main: TLS is required but STARTTLS is not offered" "$log" &&
		grep -q "wrong\\.example\\.test:$B_PORT: TLS handshake failed" "$log" &&
		sleep 1 && ! sink_has tls-bad
}
check "tls = require: delivered over a verified TLS session (name via DNS)" \
	start_tls_relay ok "mx.example.test:$B_PORT"
check "... it arrives, and the log names the verified session" tls_delivered
check "tls = require: no STARTTLS, or a certificate for another name: deferred, never sent in clear" \
	start_tls_relay bad "127.0.0.1:$SINK_PORT_main, wrong.example.test:$B_PORT"
check "... both reasons logged, nothing delivered" tls_refused

check "SIGTERM: ferry-relay exits with status 0" exits_cleanly "$RELAY_PID"

done_testing
