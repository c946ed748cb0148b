#!/bin/bash
# test_syncd_daemon.sh - ferry-syncd as a daemon: the start-up order of
# common/daemon.h and its signals.
#
#   - detached start: the parent returns only once the child is ready
#     (the pid file names a live, locked process), and a child that fails
#     during start-up makes the parent exit 1;
#   - -d start in the foreground;
#   - a second instance on the same pid file is refused with a clear
#     message, and the first keeps running;
#   - SIGHUP keeps the daemon, re-reads the configuration (a shorter
#     [syncd] interval takes effect: the next pass follows within
#     seconds), and names a changed key that needs a restart;
#   - as root with [global] user set, the state directory and the LMDB
#     files are created by that user (the relay can open them).
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD" "$FERRYCTL"

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
printf 'From: a@example.org\r\nTo: alice@example.org\r\nSubject: one\r\nMessage-ID: <d1@example.org>\r\n\r\nbody\r\n' >"$T/m1.eml"
check "a message in the source" imap_append "$IMAP_PORT_src" alice pass INBOX "$T/m1.eml"

printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"
# mkconf DIR INTERVAL [EXTRA] - a configuration whose state is in DIR
mkconf() {
	cat <<EOF
[global]
state_dir = $1
log = stderr
log_level = info
${3:-}
[syncd]
http =
source = imap://127.0.0.1:$IMAP_PORT_src?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_dst?tls=none
accounts = $T/accounts
interval = $2
pid_file = $T/syncd.pid
EOF
}
# wait_for COUNT PATTERN FILE - until FILE has COUNT lines matching
wait_for() {
	local i
	for ((i = 0; i < 150; i++)); do
		[ "$(grep -c -- "$2" "$3" 2>/dev/null)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
pid_locked() { # the pid file is held by a running process
	! flock -n "$T/syncd.pid" true
}

# --- detached start ------------------------------------------------------------------
mkconf "$T/state" 1h >"$T/syncd.conf"
check "a detached start exits 0" "$FERRY_SYNCD" -c "$T/syncd.conf"
pid=$(cat "$T/syncd.pid" 2>/dev/null)
_lib_pids+=("$pid")
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pid_locked; then
	ok "when the parent returns, the pid file names the running, locked daemon"
else
	not_ok "when the parent returns, the pid file names the running, locked daemon" "pid=$pid"
fi
for ((i = 0; i < 100; i++)); do
	"$FERRYCTL" -c "$T/syncd.conf" --json sync 2>/dev/null | grep -q '"copied": *1' && break
	sleep 0.1
done
check_output "the detached daemon's first pass copied the message" 1 \
	imap_count "$IMAP_PORT_dst" bob pass INBOX

# --- a second instance -----------------------------------------------------------------
check_fail "a second instance on the same pid file is refused" \
	"$FERRY_SYNCD" -d -c "$T/syncd.conf"
if grep -q "pid file $T/syncd.pid is locked: ferry-syncd already running (pid $pid)" "$CHECK_LOG"; then
	ok "and says which process holds the pid file"
else
	not_ok "and says which process holds the pid file" "$(cat "$CHECK_LOG")"
fi
check_fail "a detached second instance exits non-zero too (the readiness pipe)" \
	"$FERRY_SYNCD" -c "$T/syncd.conf"
if kill -0 "$pid" 2>/dev/null; then ok "the first daemon still runs"; else not_ok "the first daemon still runs"; fi
kill -TERM "$pid"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$pid" 2>/dev/null && [ ! -e "$T/syncd.pid" ]; then
	ok "SIGTERM stops the detached daemon and removes its pid file"
else
	not_ok "SIGTERM stops the detached daemon and removes its pid file"
fi

# --- -d and SIGHUP -------------------------------------------------------------------------
spawn syncd-fg "$FERRY_SYNCD" -d -c "$T/syncd.conf"
fg=$SPAWN_PID
LOG=$T/log/syncd-fg.log
check "-d: the daemon runs its first pass in the foreground" wait_for 1 "pass 1: done" "$LOG"
kill -HUP "$fg"
check "SIGHUP is logged as a reload" wait_for 1 "SIGHUP: reloading" "$LOG"
check "an unchanged configuration is said to be unchanged" wait_for 1 "reload: configuration unchanged" "$LOG"
if kill -0 "$fg" 2>/dev/null; then ok "SIGHUP keeps the daemon running"; else not_ok "SIGHUP keeps the daemon running" "$(tail "$LOG")"; fi
sed -i 's/^interval = 1h/interval = 30m/' "$T/syncd.conf"
kill -HUP "$fg"
check "a changed interval is applied" wait_for 1 "reload: \[syncd\] interval applied" "$LOG"
sed -i "s|^source = .*|source = imap://127.0.0.2:$IMAP_PORT_src?tls=none|" "$T/syncd.conf"
kill -HUP "$fg"
check "a changed source is named as needing a restart" \
	wait_for 1 "reload: \[syncd\] source changed: restart ferry-syncd to apply it" "$LOG"
if kill -0 "$fg" 2>/dev/null; then ok "the daemon still runs after the reloads"; else not_ok "the daemon still runs after the reloads"; fi
echo "broken line without equals" >>"$T/syncd.conf"
kill -HUP "$fg"
check "a configuration that does not load is refused and the running one kept" \
	wait_for 1 "keeping the running configuration" "$LOG"
stop_pid "$fg"

# The interval itself: a daemon started with 2s, reloaded to 1h, stops
# running a pass every 2 s (at most the one already scheduled follows).
mkconf "$T/state" 2s >"$T/syncd.conf"
spawn syncd-int "$FERRY_SYNCD" -d -c "$T/syncd.conf"
ip=$SPAWN_PID
check "a daemon with interval 2s runs pass after pass" wait_for 3 "pass [0-9]*: done" "$T/log/syncd-int.log"
sed -i 's/^interval = 2s/interval = 1h/' "$T/syncd.conf"
kill -HUP "$ip"
check "reloaded to 1h" wait_for 1 "reload: \[syncd\] interval applied" "$T/log/syncd-int.log"
wait_for 1 "reload:" "$T/log/syncd-int.log"
n1=$(grep -c "pass [0-9]*: done" "$T/log/syncd-int.log")
sleep 5
n2=$(grep -c "pass [0-9]*: done" "$T/log/syncd-int.log")
if [ $((n2 - n1)) -le 1 ]; then
	ok "after the reload no pass follows every 2 s any more ($n1 -> $n2 in 5 s)"
else
	not_ok "after the reload no pass follows every 2 s any more ($n1 -> $n2 in 5 s)"
fi
stop_pid "$ip"

# --- privilege drop --------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
	skip "files are created as [global] user (needs root)"
else
	mkconf "$T/state-nobody" 1h "user = nobody" >"$T/syncd.conf"
	chmod 711 "$T"
	spawn syncd-user "$FERRY_SYNCD" -d -c "$T/syncd.conf"
	up=$SPAWN_PID
	wait_for 1 "pass 1: done" "$T/log/syncd-user.log"
	owners=$(stat -c %U "$T/state-nobody" "$T/state-nobody/db" "$T/state-nobody"/db/* 2>&1 | sort -u | tr '\n' ' ')
	if [ "$owners" = "nobody " ] && grep -q "running as user nobody" "$T/log/syncd-user.log"; then
		ok "as root with user = nobody: state_dir and every LMDB file belong to nobody"
	else
		not_ok "as root with user = nobody: state_dir and every LMDB file belong to nobody" \
			"owners: $owners" "$(tail -5 "$T/log/syncd-user.log")"
	fi
	pu=$(ps -o user= -p "$up" | tr -d ' ')
	if [ "$pu" = nobody ]; then ok "the daemon runs as nobody"; else not_ok "the daemon runs as nobody" "$pu"; fi
	stop_pid "$up"
fi

done_testing
