#!/bin/bash
# test_relay_receive.sh - ferry-relay's receiving side against real
# clients (swaks, raw sockets from python3, openssl): acceptance and
# durability (spool file + LMDB record at the 250), relay denial,
# recipient list, SIZE, recipient limit, bare LF and NUL refused with
# nothing queued, sender-specified routing refused, exact dot-unstuffing, STARTTLS (and plain text injected before
# the handshake thrown away), PIPELINING, per-IP connection limit,
# command timeout, kill -9 after a 250 then restart (still queued, then
# delivered to smtp-sink), kill -9 after a 250 and before the message's
# LMDB record (indexed from its file at restart, delivered once),
# --rebuild-index, clean SIGTERM exit.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd swaks smtp-sink openssl mdb_dump "$LIB_PYTHON"

STATE=$T/state
PORT=$(free_port)
UPSTREAM_PORT=$(free_port)	# nothing listens there until the end
HTTP_PORT=$(free_port)		# not the default 8025: tests run in parallel
mkdir -p "$STATE" "$T/log"
make_cert mx.example.test >/dev/null 2>&1

printf '%s\n' "# the only mailbox of example.com besides postmaster" \
	"alice@example.com" "<Carol@Example.COM>" >"$T/recipients"

write_conf() {
	cat >"$T/relay.conf" <<EOF
[global]
state_dir = $STATE
log_level = debug
[relay]
listen = 127.0.0.1:$PORT
hostname = mx.example.test
domains = example.com, example.net
recipients = $T/recipients
max_message_size = 20K
max_recipients = 3
max_connections_per_ip = 4
max_line_length = 2K
timeout = 3s
tls_cert = $T/pki/mx.example.test.pem
tls_key = $T/pki/mx.example.test.key
[forward]
upstream = 127.0.0.1:$UPSTREAM_PORT
tls = none
retry_initial = 1s
retry_max = 2s
connect_timeout = 2s
[checks]
; no DNS server in this test: nothing may leave loopback
spf = off
dkim = off
[control]
http = 127.0.0.1:$HTTP_PORT
EOF
}

start_relay() {
	spawn relay "$FERRY_RELAY" -c "$T/relay.conf" -d
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10
}

queue_files() {
	ls -1 "$STATE/spool/queue" 2>/dev/null | grep -c '^[0-9a-f]\{16\}$'
}

# lmdb_has ID - the queue index has a record for ID (mdb_dump -p prints
# printable keys as they are).
lmdb_has() {
	mdb_dump -p -s queue "$STATE/db" 2>/dev/null | grep -qx " $1"
}

# smtp_chat CHUNK... - connect, read the greeting, then send each chunk
# (python escapes: \r \n \x00) and print every reply line received until
# 0.2 s of silence after the first one ("<closed>" when the server hangs up).
cat >"$T/chat.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
def drain():
    # the first reply may take a while (fsync); then 0.2 s of silence
    s.settimeout(5)
    buf = b""
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        s.settimeout(0.2)
        if not d:
            buf += b"<closed>\n"
            break
        buf += d
    sys.stdout.write(buf.decode("latin-1").replace("\r\n", "\n"))
    sys.stdout.flush()
    return buf
drain()
for chunk in sys.argv[2:]:
    data = chunk.encode("latin-1").decode("unicode_escape").encode("latin-1")
    try:
        s.sendall(data)
    except OSError:
        print("<send failed>")
        break
    if b"<closed>" in drain():
        break
EOF
chat() { "$LIB_PYTHON" "$T/chat.py" "$PORT" "$@"; }

write_conf
check "relay starts" start_relay

# 1. accepted, durable at the 250
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--header "Subject: first" >"$T/swaks1.out" 2>&1
ID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9a-f]\{16\}\).*/\1/p' "$T/swaks1.out")
check "swaks gets 250 queued as ID" test -n "$ID"
# At the 250 the file is in its pool file (spool/pool) or already moved
# to spool/queue, which comes before its record.
check "spool file of ID exists at the 250" sh -c \
	"test -s '$STATE/spool/queue/$ID' || test -s '$STATE/spool/pool/$ID'"
check "LMDB queue record for ID" lmdb_has "$ID"
check "with its record, the file is in spool/queue" test -f "$STATE/spool/queue/$ID"
check "spool header names sender and recipient" grep -q \
	-e "^rcpt upstream alice@example.com$" "$STATE/spool/queue/$ID"
check "Received: header prepended" grep -q \
	"^Received: from .*(\[127\.0\.0\.1\])" "$STATE/spool/queue/$ID"
if [ -x "$FERRYCTL" ]; then
	check "ferryctl queue lists ID" sh -c \
		"'$FERRYCTL' -c '$T/relay.conf' queue | grep -q '$ID'"
else
	skip "ferryctl queue lists ID" "ferryctl not built"
fi
NQ=$(queue_files)

# 2. relay denied, recipient list, postmaster
chat 'EHLO c.test\r\n' 'MAIL FROM:<bob@sender.test>\r\n' \
	'RCPT TO:<x@elsewhere.test>\r\n' 'RCPT TO:<bob@example.com>\r\n' \
	'RCPT TO:<carol@example.com>\r\n' 'RCPT TO:<postmaster@example.net>\r\n' \
	'RCPT TO:<postmaster>\r\n' 'QUIT\r\n' >"$T/rcpt.out"
check "foreign domain: 550 5.7.1" grep -q "^550 5.7.1 Relay access denied" "$T/rcpt.out"
check "unlisted user: 550 5.1.1" grep -q "^550 5.1.1 User unknown" "$T/rcpt.out"
check "listed user (any case) and postmaster accepted" test \
	"$(grep -c '^250 2.1.5' "$T/rcpt.out")" -eq 3

echo "dave@example.com" >>"$T/recipients"
kill -HUP "$RELAY_PID"
sleep 0.3
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\n' 'RCPT TO:<dave@example.com>\r\n' \
	'QUIT\r\n' >"$T/hup.out"
check "SIGHUP reloads the recipient list" grep -q "^250 2.1.5" "$T/hup.out"

# 3. limits: SIZE, recipients, data size, line length
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test> SIZE=999999\r\n' 'QUIT\r\n' >"$T/size.out"
check "EHLO advertises SIZE 20480 and STARTTLS" sh -c \
	"grep -q '^250-SIZE 20480' '$T/size.out' && grep -q '^250-STARTTLS' '$T/size.out'"
check "SIZE over the limit: 552 5.3.4" grep -q "^552 5.3.4" "$T/size.out"
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\n' \
	'RCPT TO:<alice@example.com>\r\nRCPT TO:<carol@example.com>\r\nRCPT TO:<postmaster@example.com>\r\nRCPT TO:<postmaster@example.net>\r\n' \
	'QUIT\r\n' >"$T/nrcpt.out"
check "4th recipient: 452 4.5.3" sh -c \
	"grep -q '^452 4.5.3 Too many recipients' '$T/nrcpt.out' && test \$(grep -c '^250 2.1.5' '$T/nrcpt.out') -eq 3"
BIG=$("$LIB_PYTHON" -c 'print(("x" * 70 + "\\r\\n") * 400, end="")')
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	"Subject: big\\r\\n\\r\\n$BIG.\\r\\n" 'NOOP\r\n' >"$T/big.out"
check "message over 20K: 552 5.3.4 after DATA, session goes on" sh -c \
	"grep -q '^552 5.3.4' '$T/big.out' && grep -q '^250 2.0.0 Ok$' '$T/big.out'"
LONG=$("$LIB_PYTHON" -c 'print("y" * 3000, end="")')
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	"Subject: long\\r\\n\\r\\n$LONG\\r\\n.\\r\\n" >"$T/long.out"
check "DATA line over max_line_length: 552 5.3.4" grep -q "^552 5.3.4" "$T/long.out"
CMD=$("$LIB_PYTHON" -c 'print("NOOP " + "z" * 600, end="")')
chat "$CMD\\r\\n" 'NOOP\r\n' >"$T/cmdlong.out"
check "command line over 512: 500 5.5.2, then in step" sh -c \
	"grep -q '^500 5.5.2 Line too long' '$T/cmdlong.out' && grep -q '^250 2.0.0 Ok' '$T/cmdlong.out'"
check "nothing queued by refused messages" test "$(queue_files)" -eq "$NQ"

# 4. bare LF: refused, connection closed, nothing queued
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	'Subject: smuggle\r\n\r\nhello\n.\r\nMAIL FROM:<evil@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nevil\r\n.\r\n' \
	>"$T/barelf.out"
check "bare LF: 521 5.5.2 and close" sh -c \
	"grep -q '^521 5.5.2' '$T/barelf.out' && grep -q '<closed>' '$T/barelf.out' && ! grep -q '^250 2.0.0 Ok: queued' '$T/barelf.out'"
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	'Subject: cr\r\n\r\nhello\r.\r\n.\r\n' >"$T/barecr.out"
check "bare CR: 521 5.5.2" grep -q "^521 5.5.2" "$T/barecr.out"
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	'Subject: nul\r\n\r\nhello\r\n\x00.\r\nMAIL FROM:<evil@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nevil\r\n.\r\n' \
	'NOOP\r\n' >"$T/nul.out"
check "NUL in DATA: 554 5.6.0 after the dot, session goes on" sh -c \
	"grep -q '^554 5.6.0' '$T/nul.out' && grep -q '^250 2.0.0 Ok$' '$T/nul.out' && ! grep -q '^250 2.0.0 Ok: queued' '$T/nul.out'"
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\n' \
	'RCPT TO:<x%elsewhere.test@example.com>\r\n' \
	'RCPT TO:<elsewhere.test!x@example.com>\r\n' \
	'RCPT TO:<@hop.test:alice@example.com>\r\n' 'QUIT\r\n' >"$T/route.out"
check "percent hack, bang path, source route: 550 5.7.1" test \
	"$(grep -c '^550 5.7.1 Relay access denied: sender-specified routing' "$T/route.out")" -eq 3
check "nothing queued by smuggling attempts" test "$(queue_files)" -eq "$NQ"

# 5. dot-unstuffing is exact; the body is stored byte for byte
chat 'EHLO c.test\r\n' 'MAIL FROM:<b@s.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n' \
	'Subject: dots\r\n\r\n..leading dot\r\n...\r\n..\r\n. space\r\nmid.dle.\r\n\x01\x7f\xc3\xa9 8bit\r\n\r\n.\r\n' \
	'QUIT\r\n' >"$T/dots.out"
DOTID=$(sed -n 's/^250 2\.0\.0 Ok: queued as \([0-9a-f]\{16\}\)$/\1/p' "$T/dots.out")
check "dotted message queued" test -n "$DOTID"
cat >"$T/body.py" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
body = data[data.index(b"\n\n") + 2:]
lines = body.split(b"\r\n")
i = 1
while lines[i].startswith(b"\t"):
    i += 1
want = (b"Subject: dots\r\n\r\n.leading dot\r\n..\r\n.\r\n space\r\n"
        b"mid.dle.\r\n\x01\x7f\xc3\xa9 8bit\r\n\r\n")
got = b"\r\n".join(lines[i:])
if not lines[0].startswith(b"Received: ") or got != want:
    sys.exit("got %r" % got)
EOF
check "spool holds the unstuffed message exactly" "$LIB_PYTHON" "$T/body.py" \
	"$STATE/spool/queue/$DOTID"
NQ=$(queue_files)

# 6. PIPELINING and STARTTLS
check "swaks --pipeline" sh -c "swaks --server 127.0.0.1:$PORT --pipeline \
	--from b@s.test --to alice@example.com >'$T/pipe.out' 2>&1 && \
	grep -q '250 2.0.0 Ok: queued as' '$T/pipe.out'"
# swaks needs Net::SSLeay for --tls; without it Python's smtplib (OpenSSL
# too) does the same STARTTLS transaction.
cat >"$T/tlsmail.py" <<'EOF'
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="c.test")
c.starttls(context=ctx)
c.ehlo()
if not c.has_extn("pipelining") or c.has_extn("starttls"):
    sys.exit("EHLO after STARTTLS: %r" % c.esmtp_features)
c.sendmail("b@s.test", ["alice@example.com"], b"Subject: tls\r\n\r\nsecret\r\n")
c.quit()
EOF
tls_send() {
	if swaks --support tls >/dev/null 2>&1; then
		swaks --server "127.0.0.1:$PORT" --tls --tls-ca-path "$T/pki/ca.pem" \
			--from b@s.test --to alice@example.com
	else
		"$LIB_PYTHON" "$T/tlsmail.py" "$PORT" "$T/pki/ca.pem"
	fi
}
NQ=$(queue_files)
check "STARTTLS with the test certificate, then a message" tls_send
check "the message received over TLS is queued, Received: says ESMTPS" sh -c \
	"test \$(ls '$STATE/spool/queue' | wc -l) -eq $((NQ + 1)) && grep -l 'with ESMTPS id' '$STATE'/spool/queue/* >/dev/null"
cat >"$T/inject.py" <<'EOF'
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
buf = b""
def reply(sock):
    global buf
    lines = []
    while True:
        while b"\r\n" not in buf:
            d = sock.recv(4096)
            if not d:
                sys.exit("closed")
            buf += d
        l, buf = buf.split(b"\r\n", 1)
        lines.append(l)
        if l[3:4] == b" ":
            return lines
reply(s)
s.sendall(b"EHLO c.test\r\n")
reply(s)
# STARTTLS and an injected command in one segment
s.sendall(b"STARTTLS\r\nRSET\r\n")
r = reply(s)
if r != [b"220 2.0.0 Ready to start TLS"] or buf:
    sys.exit("STARTTLS reply %r, then %r" % (r, buf))
s.settimeout(0.5)
try:
    d = s.recv(4096)
    sys.exit("plain text after the 220: %r" % d)
except socket.timeout:
    pass
s.settimeout(5)
ctx = ssl.create_default_context(cafile=sys.argv[2])
t = ctx.wrap_socket(s, server_hostname="mx.example.test")
t.settimeout(1.0)
try:
    extra = t.recv(4096)
except socket.timeout:
    extra = b""
if extra:
    sys.exit("reply to the injected command: %r" % extra)
t.settimeout(5)
t.sendall(b"EHLO c.test\r\n")
r = reply(t)
if r[0] != b"250-mx.example.test" or b"250-STARTTLS" in r:
    sys.exit("EHLO in TLS: %r" % r)
t.sendall(b"MAIL FROM:<b@s.test>\r\n")
r = reply(t)
if r != [b"250 2.1.0 Ok"]:
    sys.exit("MAIL in TLS: %r" % r)
EOF
check "bytes pipelined before the TLS handshake are discarded" \
	"$LIB_PYTHON" "$T/inject.py" "$PORT" "$T/pki/ca.pem"
chat 'MAIL FROM:<b@s.test>\r\n' 'QUIT\r\n' >"$T/nohelo.out"
check "MAIL before EHLO: 503" grep -q "^503 5.5.1" "$T/nohelo.out"

# 7. connection limit per client address, then the command timeout
sleep 0.3	# the chats above have hung up
cat >"$T/conns.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    socks.append(s)
    g = s.recv(512)
print(g.decode().strip())
if len(sys.argv) > 3:
    t0 = time.time()
    d = socks[0].recv(512)
    print("%s after %.1fs" % (d.decode().strip(), time.time() - t0))
EOF
"$LIB_PYTHON" "$T/conns.py" "$PORT" 5 >"$T/conns.out" 2>&1
check "5th connection from one address: 421 4.7.0" grep -q "^421 4.7.0" "$T/conns.out"
"$LIB_PYTHON" "$T/conns.py" "$PORT" 1 wait >"$T/timeout.out" 2>&1
check "silent client: 421 4.4.2 after the 3 s timeout" grep -q \
	"^421 4.4.2 .* after [3-4]\." "$T/timeout.out"

# 8. kill -9 after a 250: the message survives; delivered after restart
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--header "Subject: survivor" >"$T/swaks2.out" 2>&1
KID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9a-f]\{16\}\).*/\1/p' "$T/swaks2.out")
check "message before kill -9 queued" test -n "$KID"
NQ=$(queue_files)
kill -KILL "$RELAY_PID"
stop_pid "$RELAY_PID" 2>/dev/null	# bash would report "Killed"
check "after kill -9: spool file present" test -f "$STATE/spool/queue/$KID"
# A file renamed into spool/queue whose record was never committed (a
# crash between the two) gets its record at start; a leftover in
# spool/tmp is removed.
# (Its size line goes: the edit changes the length; a header without one
# is read as older versions wrote it.)
sed -e 's/^id .*/id 00000000000000fe/' -e 's/Subject: survivor/Subject: orphan/' \
	-e '/^size [0-9]*$/d' \
	"$STATE/spool/queue/$KID" >"$STATE/spool/queue/00000000000000fe"
NQ=$((NQ + 1))
touch "$STATE/spool/tmp/00000000000000ff"
# A pool file the crash caught half written (its size line still zeros,
# the message cut off): never acknowledged, so never delivered; start-up
# empties it and hands it out again.
printf 'mailferry-spool 1\nid 00000000000000fd\narrived 1700000000\nflags 0\nsize 00000000000000000000\nclient c\nsender bob@sender.test\nrcpt upstream alice@example.com\n\nSubject: half written\r\n\r\nthe rest never ca' \
	>"$STATE/spool/pool/00000000000000fd"
SINK_PORT=$UPSTREAM_PORT
export SINK_PORT
_lib_sink_port_main=$UPSTREAM_PORT
check "smtp-sink on the upstream port" start_smtp_sink
check "relay restarts" start_relay
check "spool/tmp leftover removed at start" test ! -e "$STATE/spool/tmp/00000000000000ff"
check "queued messages delivered after the restart" sink_wait "$NQ" 30
check "the survivor reached the sink" sh -c "grep -l 'Subject: survivor' '$SINK_DIR'/msg.* >/dev/null"
check "the file without a record was indexed and delivered" sh -c \
	"grep -q '00000000000000fe: queue record rebuilt' '$T/log/relay.log' && grep -l 'Subject: orphan' '$SINK_DIR'/msg.* >/dev/null"
check "the half-written pool file is emptied for reuse, not queued" sh -c \
	"grep -q '00000000000000fd: unfinished message in spool/pool' '$T/log/relay.log' && test -f '$STATE/spool/pool/00000000000000fd' && ! test -s '$STATE/spool/pool/00000000000000fd' && ! test -e '$STATE/spool/queue/00000000000000fd' && ! lmdb_has 00000000000000fd"
check "and not delivered" sh -c "! grep -l 'Subject: half written' '$SINK_DIR'/msg.* >/dev/null 2>&1"
# The next message is written into it (the oldest free pool file).
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--header "Subject: into a reused pool file" >"$T/swaks4.out" 2>&1
check "the emptied pool file is reused for the next message" \
	grep -q "250 2.0.0 Ok: queued as 00000000000000fd" "$T/swaks4.out"
NQ=$((NQ + 1))
check "which is delivered" sink_wait "$NQ" 30

# 8b. kill -9 between the spool file's fsync and its LMDB record: the 250
# goes out once the file is durable (relay/spool.h, spool_msg_early), the
# record follows.  The test hook MAILFERRY_TEST_INDEX_DELAY_MS holds the
# record back, so the relay is killed with the 250 sent, the file in
# spool/queue and no record; the restart indexes the file and delivers
# the message, once.
stop_pid "$RELAY_PID"
start_slow_index_relay() {
	spawn relay-slowindex env MAILFERRY_TEST_INDEX_DELAY_MS=4000 \
		"$FERRY_RELAY" -c "$T/relay.conf" -d
	RELAY_PID=$SPAWN_PID
	wait_port "$PORT" 10
}
# within SECS CMD... - CMD succeeds within SECS seconds
within() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
check "relay with the index delay hook starts" start_slow_index_relay
T0=$(date +%s%N)
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--header "Subject: acknowledged before its record" >"$T/swaks3.out" 2>&1
T1=$(date +%s%N)
AID=$(sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9a-f]\{16\}\).*/\1/p' "$T/swaks3.out")
check "250 before the record is committed (in $(((T1 - T0) / 1000000)) ms)" \
	sh -c "[ -n '$AID' ] && [ $(((T1 - T0) / 1000000)) -lt 3500 ]"
# Written in place into a pool file (relay/spool_pool.c): at the 250 it
# is still in spool/pool, a whole message whose size line matches.
check "between fsync and record: the message is in its pool file" \
	sh -c "test -s '$STATE/spool/pool/$AID' && grep -q '^size 0*[1-9]' '$STATE/spool/pool/$AID'"
check "between fsync and record: no LMDB record yet" sh -c "! mdb_dump -p -s queue '$STATE/db' 2>/dev/null | grep -qx ' $AID'"
kill -KILL "$RELAY_PID"
stop_pid "$RELAY_PID" 2>/dev/null
check "relay restarts after kill -9" start_relay
check "start-up moves it from spool/pool to spool/queue" \
	within 10 grep -q "$AID: whole message moved from spool/pool to spool/queue" "$T/log/relay.log"
check "the acknowledged message's record is rebuilt from its file" \
	within 10 grep -q "$AID: queue record rebuilt from its spool file" "$T/log/relay.log"
acked_delivered() {
	[ "$(grep -l 'Subject: acknowledged before its record' "$SINK_DIR"/msg.* 2>/dev/null | wc -l)" -eq 1 ]
}
check "and delivered, once" within 30 acked_delivered

# 9. --rebuild-index and a clean SIGTERM
stop_pid "$RELAY_PID"
check "SIGTERM: clean exit" sh -c "! grep -q 'ERROR: AddressSanitizer\|LeakSanitizer' '$T/log/relay.log' && grep -q 'stopped' '$T/log/relay.log'"
swaks_count=$(queue_files)
check "--rebuild-index" sh -c "'$FERRY_RELAY' -c '$T/relay.conf' --rebuild-index 2>&1 | grep -q 'rebuilt: $swaks_count message'"

done_testing
