#!/bin/bash
# test_syncd_crash.sh - kill -9 of ferry-syncd in the middle of a full
# pass, three times at different points, then a restart: the destination
# ends with every source message exactly once (DESIGN.md §1, "No
# duplicates"; §6, "resume after a crash").
#
# The source (Dovecot "src", user alice) holds 1200 generated messages in
# three folders (INBOX, a nested one, a non-ASCII one).  ferry-syncd runs
# with max_messages_per_second so a pass lasts a few seconds; the test
# watches the destination's maildir and kills the process group with
# SIGKILL once about 20% (first run) and 40% (second run, 0.1 s later,
# once ferryctl shows it running) of the messages have arrived, and the
# third run 0.05 s after its first message arrived.  A fourth
# run must finish the pass; then every folder of the destination must
# hold exactly the source's messages (Message-ID and SHA-256 of the whole
# message; flags and INTERNALDATE too), no message twice, and a fifth
# run must copy nothing.  During the second run, `ferryctl sync --json`
# must show the pass running (read from the store beside the writer),
# and after its kill -9, `ferryctl sync` must say the process is gone.
# Last, a 50 MB message alone in a new folder,
# copied through a proxy that slows the destination down (so the APPEND
# must wait for the socket), must arrive intact with a peak RSS under
# 50 MB.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD" "$FERRYCTL"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py
TOTAL=1200

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

# 1200 messages (about 40 MB) in three folders, numbered apart so every
# Message-ID is unique.
M=$T/dovecot/src/mail/alice/Maildir
gen() {
	"$LIB_PYTHON" "$GEN" -q --seed 7 --maildir "$M" "$@"
}
fill_source() {
	gen --count 500 --start 0 --folder INBOX &&
		gen --count 400 --start 1000 --folder Archive/2020 &&
		gen --count 300 --start 2000 --folder "Projects/Réunions" || return 1
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
	doveadm_cmd src force-resync -u alice '*'
}
check "generate $TOTAL messages in three folders" fill_source
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass >"$T/src.digest"
check_output "the source holds $TOTAL messages" "$TOTAL" \
	awk 'END { print NR }' "$T/src.digest"
# Log in once so Dovecot creates the destination's maildir.
imap_cmd "$DST" bob pass NOOP >/dev/null

write_syncd_conf "$T/syncd.conf" "$SRC" "$DST" "max_messages_per_second = 150"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

DM=$T/dovecot/dst/mail/bob/Maildir
dst_files() { syncd_dst_files "$DM"; }

# check_live - what ferryctl said while the pass ran, and says now
check_live() {
	local got
	got=$("$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(j["running"], j["mode"], j["messages_done"] > 0, j["accounts"][0]["user"])' \
		"$T/live.json" 2>&1)
	if [ "$got" = "True once True alice" ]; then
		ok "ferryctl sync --json during the pass: running, --once, messages done"
	else
		not_ok "ferryctl sync --json during the pass: running, --once, messages done" \
			"got: $got" "$(head -c 400 "$T/live.json")"
	fi
	"$FERRYCTL" -c "$T/syncd.conf" sync >"$T/dead.out" 2>&1
	if [ $? -eq 0 ] && grep -q "is gone without finishing" "$T/dead.out"; then
		ok "ferryctl sync after the kill: the process is gone without finishing"
	else
		not_ok "ferryctl sync after the kill: the process is gone without finishing" \
			"$(cat "$T/dead.out")"
	fi
}

# live_wait PID - poll ferryctl until its record is PID's and running
live_wait() {
	local i
	# The record is rewritten every 2 s: under a sanitizer build the
	# first one of a run may predate its first copied message.
	for ((i = 0; i < 100; i++)); do
		"$FERRYCTL" -c "$T/syncd.conf" sync --json >"$T/live.json" 2>&1 &&
			"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["pid"] == int(sys.argv[2]) and j["running"] and
    j["messages_done"] > 0 else 1)' \
				"$T/live.json" "$1" 2>/dev/null && return 0
		_lib_alive "$1" || return 1
		sleep 0.1
	done
	return 1
}

for spec in 20:0 40:0.1 next:0.05; do
	point=${spec%:*}
	if [ "$point" = next ]; then
		want=$(($(dst_files) + 1))
		point=$((want * 100 / TOTAL))
	else
		want=$((TOTAL * point / 100))
	fi
	# at 40 %, first wait (up to 5 s, the pass going on) until
	# `ferryctl sync --json` shows the pass running: $T/live.json
	KILL_AT_HOOK=
	[ "$point" != 40 ] || KILL_AT_HOOK=live_wait
	if syncd_kill_at "$DM" "$want" "kill$point" "${spec#*:}"; then
		after=$(dst_files)
		if [ "$after" -lt "$TOTAL" ]; then
			ok "kill -9 at about ${point}%: $KILLED_AT messages on the destination, $after after the kill"
			[ -z "$KILL_AT_HOOK" ] || check_live
		else
			not_ok "kill -9 at about ${point}% hits a pass in progress" \
				"the destination already held all $after messages"
		fi
	else
		not_ok "kill -9 at about ${point}% hits a pass in progress" \
			"ferry-syncd ended before the destination held $want messages ($(dst_files))" \
			"$(tail -n 5 "$T/log/syncd-kill$point.log")"
	fi
done

# The run after the crashes finishes the pass.
"$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/final.json" 2>"$T/log/syncd-final.log"
rc=$?
if [ $rc -eq 0 ]; then
	ok "the restarted pass completes (exit 0)"
else
	not_ok "the restarted pass completes (exit 0)" "exit $rc" \
		"$(tail -n 15 "$T/log/syncd-final.log")"
fi

"$LIB_PYTHON" "$DIGEST" "$DST" bob pass >"$T/dst.digest"
cut -f1-3 "$T/src.digest" >"$T/src.ids"
cut -f1-3 "$T/dst.digest" >"$T/dst.ids"
dups=$(sort "$T/dst.ids" | uniq -d | wc -l)
if [ "$dups" -eq 0 ]; then
	ok "no message is on the destination twice"
else
	not_ok "no message is on the destination twice" \
		"$dups duplicated, e.g.:" "$(sort "$T/dst.ids" | uniq -d | head -n 3)"
fi
if cmp -s "$T/src.ids" "$T/dst.ids"; then
	ok "every folder holds exactly the source's messages (Message-ID, SHA-256)"
else
	not_ok "every folder holds exactly the source's messages (Message-ID, SHA-256)" \
		"source $(wc -l <"$T/src.ids"), destination $(wc -l <"$T/dst.ids")" \
		"$(diff "$T/src.ids" "$T/dst.ids" | head -n 6)"
fi
if cmp -s "$T/src.digest" "$T/dst.digest"; then
	ok "flags and INTERNALDATEs match too"
else
	not_ok "flags and INTERNALDATEs match too" \
		"$(diff "$T/src.digest" "$T/dst.digest" | head -n 6)"
fi

# A pass after that finds nothing to do.
"$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/again.json" 2>"$T/log/syncd-again.log"
rc=$?
copied=$("$LIB_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["copied"])' \
	"$T/again.json" 2>/dev/null)
if [ $rc -eq 0 ] && [ "$copied" = 0 ]; then
	ok "one more pass copies nothing"
else
	not_ok "one more pass copies nothing" "exit $rc, copied '$copied'"
fi
check_output "the destination still holds $TOTAL messages" "$TOTAL" dst_files

# Then a big message alone in a new folder (a batch of one: a single
# APPEND, the body streamed under flow control) through a slow link:
# copied intact, and the memory bound of DESIGN.md §1 holds.
big_source() {
	gen --count 1 --start 5000 --folder Big --scale 0.01 --big 50000000 &&
		{ [ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"; }
}
check "a 50 MB message in a new source folder" big_source
# The destination is reached through a proxy that passes at most about
# 40 MB/s towards it, so its socket fills and the APPEND streamer must
# wait for "writable" and resume the source: the flow-control path.
cat >"$T/slowproxy.py" <<'PYEOF'
import os, select, socket, sys, threading, time
portfile, dport = sys.argv[1], int(sys.argv[2])
def pipe(c):
    s = socket.create_connection(("127.0.0.1", dport))
    try:
        while True:
            r, _, _ = select.select([c, s], [], [])
            if c in r:
                d = c.recv(65536)
                if not d:
                    return
                s.sendall(d)
                time.sleep(len(d) / 40e6)
            if s in r:
                d = s.recv(65536)
                if not d:
                    return
                c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()
        s.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(16)
with open(portfile + ".tmp", "w") as f:
    f.write(str(l.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    c, _ = l.accept()
    threading.Thread(target=pipe, args=(c,), daemon=True).start()
PYEOF
start_slowproxy() {
	local i
	spawn slowproxy "$LIB_PYTHON" "$T/slowproxy.py" "$T/slow.port" "$DST"
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/slow.port" ] && break
		sleep 0.05
	done
	SLOW_PORT=$(cat "$T/slow.port") && wait_port "$SLOW_PORT" || return 1
	sed "s|^destination = .*|destination = imap://127.0.0.1:$SLOW_PORT?tls=none|" \
		"$T/syncd.conf" >"$T/slow.conf"
}
check "a slow proxy in front of the destination" start_slowproxy
SECONDS=0
/usr/bin/time -f '%M' -o "$T/big.rss" timeout -s KILL 60 \
	"$FERRY_SYNCD" -c "$T/slow.conf" --once >"$T/big.out" 2>"$T/log/syncd-big.log"
rc=$?
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass Big | cut -f1-3 >"$T/src.big"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass Big | cut -f1-3 >"$T/dst.big"
if [ $rc -eq 0 ] && [ "$(wc -l <"$T/src.big")" -eq 2 ] && cmp -s "$T/src.big" "$T/dst.big"; then
	ok "the 50 MB message is copied intact (${SECONDS}s)"
else
	not_ok "the 50 MB message is copied intact" "exit $rc after ${SECONDS}s" \
		"$(diff "$T/src.big" "$T/dst.big")" "$(tail -n 5 "$T/log/syncd-big.log")"
fi
rss=$(tail -n 1 "$T/big.rss")
if grep -q '__asan_init\|__tsan_init' "$FERRY_SYNCD" 2>/dev/null; then
	skip "peak RSS while copying it stays under 50 MB" "sanitizer build (${rss:-?} kB)"
elif [ $rc -eq 0 ] && [ -n "$rss" ] && [ "$rss" -lt 51200 ]; then
	ok "peak RSS while copying it: $((rss / 1024)) MB (< 50 MB)"
else
	not_ok "peak RSS while copying it stays under 50 MB" "exit $rc, peak ${rss:-?} kB"
fi

done_testing
