#!/bin/bash
# test_relay_full.sh - ferry-relay when something fills up:
#   spool file system: EHLO keeps advertising SIZE with the configured
#       limit; MAIL FROM ... SIZE=n larger than the free space beyond the
#       reserve gets 452 4.3.1 (RFC 1870 §6), a small one 250 (the
#       reserve comes from the MAILFERRY_TEST_SPOOL_RESERVE hook, set to
#       leave 512 MB);
#   the LMDB map at a tiny [global] map_size: messages get 452 4.3.1
#       once it is full (451 4.3.0 when a queue write got through just
#       before: the map was not full then), each refusal one log line, the relay keeps
#       running, and every message that got 250 is on disk and in the
#       index; restarted with room it forwards every one of them, once;
#   the control HTTP listener: [control] max_connections at once, the
#       rest closed at once (logged once), served again when they go.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd smtp-sink mdb_dump "$LIB_PYTHON"

PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$T/log"
check "smtp-sink starts (answering MAIL 4xx for now)" start_smtp_sink -r MAIL

write_conf() {	# FILE STATE MAP_SIZE
	mkdir -p "$2"
	cat >"$1" <<EOF
[global]
state_dir = $2
log = stderr
map_size = $3
[relay]
listen = 127.0.0.1:$PORT
hostname = mx.example.test
domains = example.com
max_message_size = 50M
[forward]
upstream = 127.0.0.1:$SINK_PORT
tls = none
retry_initial = 1s
retry_max = 2s
[checks]
spf = off
dkim = off
[control]
http = 127.0.0.1:$HTTP_PORT
max_connections = 3
EOF
}

# smtp.py PORT SCRIPT... - one session: each argument is sent as a
# command (">text") or a message body (".text", LF made CRLF,
# dot-terminated); every reply's last line is printed; after a refused
# MAIL the rest of its transaction is skipped
cat >"$T/smtp.py" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if not l:
            return "<closed>"
        if l[3:4] != b"-":
            return l.decode().strip()
        print(l.decode().strip())
print(reply())
skip = False
for a in sys.argv[2:]:
    if a.startswith(">MAIL") or a.startswith(">QUIT"):
        skip = False
    if skip:
        continue
    body = a[1:].replace("\n", "\r\n").encode()
    s.sendall(body + (b"\r\n.\r\n" if a[0] == "." else b"\r\n"))
    r = reply()
    print(r)
    # a refused MAIL: the rest of that transaction is not sent
    skip = a.startswith(">MAIL") and not r.startswith("2")
EOF

# --- SIZE against the free space -------------------------------------------
write_conf "$T/relay.conf" "$T/state" 64M
sed -i 's/^max_message_size = 50M/max_message_size = 20G/' "$T/relay.conf"
# room: 512 MB (half the free space on a smaller disk), far more than
# the other tests running beside this one write meanwhile
AVAIL=$("$LIB_PYTHON" -c "import os; s = os.statvfs('$T/state'); print(s.f_bavail * s.f_frsize)")
ROOM=$((512 * 1024 * 1024))
[ "$AVAIL" -gt $((2 * ROOM)) ] || ROOM=$((AVAIL / 2))
RESERVE=$((AVAIL - ROOM))
spawn relay env MAILFERRY_TEST_SPOOL_RESERVE=$RESERVE \
	"$FERRY_RELAY" -c "$T/relay.conf" -d
RELAY=$SPAWN_PID
check "relay starts ($((ROOM >> 20)) MB of spool room)" wait_port "$PORT" 10
"$LIB_PYTHON" "$T/smtp.py" "$PORT" ">EHLO c.test" \
	">MAIL FROM:<a@sender.test> SIZE=10000000000" \
	">MAIL FROM:<a@sender.test> SIZE=1000" ">QUIT" >"$T/size.out" 2>&1
check "EHLO still advertises SIZE with the configured limit" \
	grep -qx "250-SIZE 21474836480" "$T/size.out"
check "SIZE=10000000000 beyond the free space: 452 4.3.1" \
	sh -c "sed -n 8p '$T/size.out' | grep -q '^452 4.3.1 '"
diag "$(sed -n 8,9p "$T/size.out")"
check "SIZE=1000 within it: 250" sh -c "sed -n 9p '$T/size.out' | grep -q '^250 2.1.0'"
stop_pid "$RELAY"

# --- the control listener's cap -------------------------------------------
write_conf "$T/relay.conf" "$T/state2" 256K
spawn relay2 "$FERRY_RELAY" -c "$T/relay.conf" -d
RELAY=$SPAWN_PID
check "relay starts (map_size 256K, [control] max_connections 3)" \
	wait_port "$PORT" 10
"$LIB_PYTHON" - "$HTTP_PORT" >"$T/http.out" 2>&1 <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
time.sleep(0.5)
state = []
for s in socks:
    s.settimeout(0.3)
    try:
        state.append("closed" if s.recv(100) == b"" else "data")
    except socket.timeout:
        state.append("open")
    except OSError:
        state.append("closed")
print("open %d closed %d" % (state.count("open"), state.count("closed")))
s = socks[state.index("open")]
s.settimeout(5)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
print("held: " + s.recv(100).decode().splitlines()[0])
for s in socks:
    s.close()
time.sleep(0.3)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
print("after: " + s.recv(100).decode().splitlines()[0])
EOF
check "control: 3 connections served, 5 closed at once" \
	grep -qx "open 3 closed 5" "$T/http.out"
check "control: a held connection is answered" grep -q "^held: HTTP/1.. 200" \
	"$T/http.out"
check "control: served again once they are gone" grep -q "^after: HTTP/1.. 200" \
	"$T/http.out"
check "control: the refusals are logged once" test \
	"$(grep -c 'control: HTTP connection refused' "$T/log/relay2.log")" -eq 1
diag "$(cat "$T/http.out")"

# --- the LMDB map fills up -------------------------------------------------
# session N TAG - one SMTP session of N messages (to TAGi@example.com);
# its replies in $T/TAG.out, the queue ids it was given in $T/TAG.acked
session() {
	local i args=(">EHLO c.test")

	for i in $(seq 1 "$1"); do
		args+=(">MAIL FROM:<bob@sender.test>" ">RCPT TO:<$2$i@example.com>"
			">DATA" ".Subject: $2 $i
Message-ID: <$2-$i@sender.test>

message $i")
	done
	"$LIB_PYTHON" "$T/smtp.py" "$PORT" "${args[@]}" ">QUIT" >"$T/$2.out" 2>&1
	grep -o "queued as [0-9a-f]\{16\}" "$T/$2.out" | awk '{ print $3 }' |
		sort >"$T/$2.acked"
}
session 600 fill
mv "$T/fill.acked" "$T/acked"
NACK=$(wc -l <"$T/acked")
N452=$(grep -c "^452 4.3.1 Insufficient system storage" "$T/fill.out")
N4XX=$(grep -c "^4[0-9][0-9] " "$T/fill.out")
check "messages are accepted until the map is full ($NACK)" test "$NACK" -ge 20 -a "$NACK" -lt 600
check "then answered 452 4.3.1 ($N452 times), never 5xx" \
	sh -c "test $N452 -ge 1 && ! grep -q '^5' '$T/fill.out'"
check "the session survived to QUIT" grep -q "^221 " "$T/fill.out"
check "the relay keeps running" kill -0 "$RELAY"
NLOG=$(grep -cE "not queued: .*store full|store is full" "$T/log/relay2.log")
check "one log line per refused message ($NLOG for $N4XX)" test "$NLOG" -eq "$N4XX"
check "the cause is named: store full, [global] map_size" grep -qE \
	"store full: map size [0-9]+ bytes reached its limit|the store is full \(\[global\] map_size\)" \
	"$T/log/relay2.log"
# Acknowledged means durable in spool/queue, or still in spool/pool when
# the index thread has not moved it yet (it waits a second after a
# refused commit); the pool's empty, pre-created files are no message.
find "$T/state2/spool/queue" "$T/state2/spool/pool" -maxdepth 1 -type f \
	-size +0 -printf '%f\n' | grep -x '[0-9a-f]\{16\}' | sort >"$T/spooled"
diag "acknowledged and still in spool/pool: $(find "$T/state2/spool/pool" \
	-maxdepth 1 -type f -size +0 | wc -l)"
check "every acknowledged message is in the spool" \
	sh -c "comm -23 '$T/acked' '$T/spooled' | wc -l | grep -qx 0"
mdb_dump -p -s queue "$T/state2/db" | sed -n 's/^ \([0-9a-f]\{16\}\)$/\1/p' |
	sort >"$T/indexed"
# The 250 follows the spool file's fsync and the index commit comes
# after it: the last acknowledged messages may have found the map full
# and wait, spooled, for an index; the restart below indexes them from
# their files, and every one must go out.
diag "acknowledged and not yet in the queue index: $(comm -23 "$T/acked" "$T/indexed" | wc -l)"
check "nothing refused was left behind (spool = acknowledged)" \
	cmp -s "$T/acked" "$T/spooled"
# A new session is refused too.  The map is full, not frozen: the queue
# rewrites its records as it defers them, and LMDB reuses the pages the
# old versions held once no reader needs them, so a message may still
# fit now and then (accepted and spooled, it is one more to forward).
# Twenty in a row cannot all fit.
session 20 again
find "$T/state2/spool/queue" "$T/state2/spool/pool" -maxdepth 1 -type f \
	-size +0 -printf '%f\n' | sort >"$T/spooled"
NAGAIN=$(wc -l <"$T/again.acked")
check "a new session's mail gets 4xx too (at MAIL or after DATA; $NAGAIN of 20 fitted)" \
	sh -c "grep -q '^4[0-9][0-9] 4\.3\.' '$T/again.out' &&
	! grep -q '^5' '$T/again.out' &&
	comm -23 '$T/again.acked' '$T/spooled' | wc -l | grep -qx 0"
NACK=$((NACK + NAGAIN))
stop_pid "$RELAY"

# --- restarted with room: every acknowledged message goes out once ----------
stop_smtp_sink
check "smtp-sink accepts now" start_smtp_sink
write_conf "$T/relay.conf" "$T/state2" 64M
spawn relay3 "$FERRY_RELAY" -c "$T/relay.conf" -d
check "relay restarts with map_size 64M" wait_port "$PORT" 10
sink_wait "$NACK" 60
check_output "all $NACK acknowledged messages forwarded, none twice" "$NACK" sink_count

done_testing
