#!/bin/bash
# test_relay_limits.sh - ferry-relay against clients that hold sockets
# without sending mail, and at its file-descriptor limit:
#   slowloris: a command line dribbled a byte at a time (every byte
#       resets the idle timeout) is cut with 421 4.4.2 at
#       command_deadline; DATA dribbled below min_data_rate is cut about
#       data_timeout after it began; a normal client is served meanwhile;
#   stress mode: with sessions at stress_threshold % of max_connections
#       one address may hold only stress_max_connections_per_ip more, and
#       idle sessions are cut at stress_timeout (far below timeout and
#       command_deadline); the cap is back once the load is gone;
#   EMFILE: with the open-file limit lowered under the running relay
#       (prlimit) and many more clients than descriptors, the relay
#       neither spins (CPU time from /proc/PID/stat over 3 s) nor floods
#       the log, answers some waiting clients 421 4.3.2, and serves again
#       once the clients have gone;
#   start-up: a hard RLIMIT_NOFILE below what max_connections needs is
#       refused with the numbers; a low soft limit is raised.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd swaks prlimit "$LIB_PYTHON"

STATE=$T/state
PORT=$(free_port)
UPSTREAM_PORT=$(free_port)	# nothing listens: mail stays queued
HTTP_PORT=$(free_port)
mkdir -p "$STATE" "$T/log"

write_conf() {	# FILE STATE PORT HTTP MAX_CONNECTIONS
	mkdir -p "$2"
	cat >"$1" <<EOF
[global]
state_dir = $2
log = stderr
[relay]
listen = 127.0.0.1:$3
hostname = mx.example.test
domains = example.com
max_connections = $5
max_connections_per_ip = 15
timeout = 30s
data_timeout = 3s
command_deadline = 4s
min_data_rate = 1000
stress_threshold = 50
stress_timeout = 1s
stress_max_connections_per_ip = 3
[forward]
upstream = 127.0.0.1:$UPSTREAM_PORT
tls = none
concurrency = 1
retry_initial = 1h
retry_max = 2h
[checks]
spf = off
dkim = off
[control]
http = 127.0.0.1:$4
EOF
}

# slow.py PORT MODE - one client that dribbles, printing what it got and
# after how many seconds: "cmd" sends EHLO one byte per 0.5 s; "data"
# sends the envelope at once, then the message 2 bytes per 0.5 s.
cat >"$T/slow.py" <<'EOF'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rb")
f.readline()
def dribble(data, n):
    t0 = time.time()
    s.setblocking(False)
    got = b""
    for i in range(0, len(data), n):
        try:
            s.send(data[i:i + n])
        except OSError:
            break
        end = time.time() + 0.5
        while time.time() < end:
            try:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                # a reset after the 421: the relay closed with our last
                # bytes unread (Linux then sends RST, not FIN)
                break
        if b"421" in got:
            break
    print("%.1f %s" % (time.time() - t0, got.decode("latin-1").strip()))
if mode == "cmd":
    dribble(b"EHLO slow-client.example.test\r\n", 1)
else:
    for l in (b"EHLO slow.test\r\n", b"MAIL FROM:<slow@sender.test>\r\n",
              b"RCPT TO:<alice@example.com>\r\n", b"DATA\r\n"):
        s.sendall(l)
        while f.readline()[3:4] == b"-":
            pass
    dribble(b"Subject: slow\r\n\r\n" + b"x" * 200 + b"\r\n.\r\n", 2)
EOF

# hold.py PORT N - open N sessions (greeting read), then one more, print
# the extra one's greeting, then how long until each of the N was cut
cat >"$T/hold.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.makefile("rb").readline()
    socks.append(s)
time.sleep(0.3)
x = socket.create_connection(("127.0.0.1", port), timeout=5)
print("extra: " + x.makefile("rb").readline().decode().strip())
x.close()
t0 = time.time()
cut = 0
for s in socks:
    s.settimeout(max(0.1, 20 - (time.time() - t0)))
    try:
        d = s.recv(4096)
        if d.startswith(b"421 4.4.2"):
            cut += 1
    except OSError:
        pass
print("cut %d of %d within %.1f s" % (cut, n, time.time() - t0))
EOF

relay_log_count() {	# PATTERN
	grep -c -- "$1" "$T/log/relay.log"
}

write_conf "$T/relay.conf" "$STATE" "$PORT" "$HTTP_PORT" 20
spawn relay "$FERRY_RELAY" -c "$T/relay.conf" -d
RELAY_PID=$SPAWN_PID
check "relay starts" wait_port "$PORT" 10

# --- slowloris: a command line -------------------------------------------
"$LIB_PYTHON" "$T/slow.py" "$PORT" cmd >"$T/slow_cmd.out" 2>&1 &
SLOW=$!
sleep 1
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--header "Subject: normal" >"$T/normal1.out" 2>&1
check "a normal client is served meanwhile" grep -q "250 2.0.0 Ok: queued" \
	"$T/normal1.out"
wait "$SLOW"
check "a dribbled command line is cut with 421 4.4.2" \
	grep -q "421 4.4.2 .*timeout exceeded" "$T/slow_cmd.out"
read -r SECS _ <"$T/slow_cmd.out"
check "... at command_deadline (4 s), not after timeout (30 s): ${SECS}s" \
	"$LIB_PYTHON" -c "import sys; sys.exit(not 3.0 <= float('$SECS') <= 7.0)"
check "the deadline is logged" grep -q "deadline exceeded in a command" \
	"$T/log/relay.log"

# --- slowloris: DATA -----------------------------------------------------
"$LIB_PYTHON" "$T/slow.py" "$PORT" data >"$T/slow_data.out" 2>&1
check "DATA dribbled below min_data_rate is cut with 421 4.4.2" \
	grep -q "421 4.4.2 .*timeout exceeded" "$T/slow_data.out"
read -r SECS _ <"$T/slow_data.out"
check "... about data_timeout (3 s) after DATA began: ${SECS}s" \
	"$LIB_PYTHON" -c "import sys; sys.exit(not 2.0 <= float('$SECS') <= 6.0)"
swaks --server "127.0.0.1:$PORT" --from bob@sender.test --to alice@example.com \
	--body "$(head -c 30000 /dev/zero | tr '\0' 'y' | fold -w 70)" \
	>"$T/normal2.out" 2>&1
check "a normal DATA is served" grep -q "250 2.0.0 Ok: queued" "$T/normal2.out"

# --- stress mode ---------------------------------------------------------
"$LIB_PYTHON" "$T/hold.py" "$PORT" 10 >"$T/hold.out" 2>&1
check "stress: one more from the same address is refused (cap 3)" \
	grep -q "^extra: 421 4.7.0 .*too many connections from" "$T/hold.out"
check "stress mode is logged once" test "$(relay_log_count 'stress mode on')" -eq 1
check "stress: idle sessions are cut at stress_timeout" \
	grep -Eq "^cut 10 of 10 within [0-2]\.[0-9] s" "$T/hold.out"
diag "$(cat "$T/hold.out")"
sleep 0.5
check "stress mode ends with the load" grep -q "stress mode off" "$T/log/relay.log"
"$LIB_PYTHON" - "$PORT" >"$T/after.out" 2>&1 <<'EOF'
import socket, sys
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
         for _ in range(5)]
print(" ".join(s.makefile("rb").readline().decode()[:3] for s in socks))
EOF
check "after stress: 5 from one address are served again" \
	grep -qx "220 220 220 220 220" "$T/after.out"
stop_pid "$RELAY_PID"

# --- EMFILE --------------------------------------------------------------
PORT2=$(free_port)
HTTP2=$(free_port)
write_conf "$T/relay2.conf" "$T/state2" "$PORT2" "$HTTP2" 300
sed -i -e 's/^stress_threshold = 50/stress_threshold = 100/' \
	-e 's/^max_connections_per_ip = 15/max_connections_per_ip = 1000/' "$T/relay2.conf"
spawn relay2 "$FERRY_RELAY" -c "$T/relay2.conf" -d
RELAY2=$SPAWN_PID
check "relay (max_connections 300) starts" wait_port "$PORT2" 10
check "open-file limit lowered to 64 under the running relay" \
	prlimit --pid "$RELAY2" --nofile=64:64
"$LIB_PYTHON" - "$PORT2" "$T/emfile.go" >"$T/emfile.out" 2>&1 <<'EOF' &
import os, socket, sys, time
port, go = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(150):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
time.sleep(4.5)
got421 = 0
for s in socks:
    try:
        if s.recv(4096).startswith(b"421 4.3.2"):
            got421 += 1
    except OSError:
        pass
print("421 4.3.2: %d" % got421)
for s in socks:
    s.close()
open(go, "w").close()
EOF
CLIENTS=$!
sleep 1
TCK=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$RELAY2/stat"; }
C0=$(cpu)
sleep 3
C1=$(cpu)
PCT=$(( (C1 - C0) * 100 / (3 * TCK) ))
check "at EMFILE the relay does not spin: ${PCT}% CPU over 3 s" test "$PCT" -lt 10
wait "$CLIENTS"
NLOG=$(grep -c "accept:" "$T/log/relay2.log")
check "the accept error is not flooded into the log: $NLOG line(s)" \
	test "$NLOG" -ge 1 -a "$NLOG" -le 3
check "the accept error names the cause" grep -q "accept: Too many open files" \
	"$T/log/relay2.log"
check "waiting clients hear 421 4.3.2 (the reserve descriptor)" \
	grep -Eq "^421 4.3.2: [1-9]" "$T/emfile.out"
diag "$(cat "$T/emfile.out")"
sleep 1.5
swaks --server "127.0.0.1:$PORT2" --from bob@sender.test --to alice@example.com \
	--header "Subject: after emfile" >"$T/emfile_after.out" 2>&1
check "once the clients are gone the relay serves again" \
	grep -q "250 2.0.0 Ok: queued" "$T/emfile_after.out"
check "the relay is still running" kill -0 "$RELAY2"
stop_pid "$RELAY2"

# --- start-up: RLIMIT_NOFILE against max_connections ----------------------
PORT3=$(free_port)
write_conf "$T/relay3.conf" "$T/state3" "$PORT3" "$(free_port)" 300
bash -c "ulimit -n 200 && exec timeout 10 '$FERRY_RELAY' -c '$T/relay3.conf' -d" \
	>"$T/refuse.out" 2>&1
RC=$?
check "a hard limit below the need is refused at start (rc $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
check "... naming max_connections, the need and the limit" grep -q \
	"open-file limit too low: \[relay\] max_connections 300 .* need 698 .* hard limit (RLIMIT_NOFILE) is 200" \
	"$T/refuse.out"
diag "$(tail -1 "$T/refuse.out")"
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 698 ]; then
	spawn relay3 bash -c "ulimit -S -n 200 && exec '$FERRY_RELAY' -c '$T/relay3.conf' -d"
	RELAY3=$SPAWN_PID
	check "a low soft limit is raised (relay starts)" wait_port "$PORT3" 10
	check "... to what max_connections needs" grep -q \
		"raising the open-file limit from 200 to 698" "$T/log/relay3.log"
	check "... and the process has it" grep -Eq \
		"^Max open files +698 " "/proc/$RELAY3/limits"
	stop_pid "$RELAY3"
else
	skip "a low soft limit is raised" "hard limit $(ulimit -Hn) below 698"
	skip "... to what max_connections needs" "hard limit too low"
	skip "... and the process has it" "hard limit too low"
fi

done_testing
