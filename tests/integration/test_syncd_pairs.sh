#!/bin/bash
# test_syncd_pairs.sh - a destination that is slow to APPEND gets more
# connection pairs.  A proxy in front of a Dovecot destination holds every
# APPEND's tagged answer back 40 ms (a server slow to APPEND);
# 200 messages in 10 folders are too few for an extra
# pair up front (one per 250), so only what the copies cost can call for
# more: the log says "one more connection pair", every message is on the
# destination once, and never more connections than connections_per_server.
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py

DOVECOT_NAME=src check "source Dovecot starts" start_dovecot alice:pass || done_testing
DOVECOT_NAME=dst check "destination Dovecot starts" start_dovecot bob:pass || done_testing
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst

fill() {
	local i
	for i in 0 1 2 3 4 5 6 7 8 9; do
		"$LIB_PYTHON" "$GEN" -q --seed 9 --start $((i * 20)) --count 20 \
			--scale 0.005 --folder "Folder$i" \
			--maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
	done
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
check "source: 200 generated messages in 10 folders" fill

# The slow proxy: MULTIAPPEND hidden (one APPEND a message, as on
# Courier), and each server answer that ends an APPEND waits 40 ms;
# the most connections open at once goes to $T/proxy.max.
cat >"$T/slow.py" <<'PYEOF'
import asyncio, sys
portfile, upstream = sys.argv[1], int(sys.argv[2])
state = {"open": 0, "max": 0}

async def pipe(r, w, slow):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            if slow:
                # one APPEND a message, as on Courier
                data = data.replace(b" MULTIAPPEND", b"")
                n = data.count(b"[APPENDUID ")
                if n:
                    await asyncio.sleep(0.04 * n)
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()

async def handle(cr, cw):
    state["open"] += 1
    state["max"] = max(state["max"], state["open"])
    open(portfile + ".max", "w").write("%d\n" % state["max"])
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(cr, sw, False), pipe(sr, cw, True))
    finally:
        state["open"] -= 1

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    open(portfile, "w").write("%d\n" % srv.sockets[0].getsockname()[1])
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
PYEOF
spawn slowproxy "$LIB_PYTHON" "$T/slow.py" "$T/proxy.port" "$DST"
for i in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
check "the slow proxy listens" test -s "$T/proxy.port"
PROXY=$(cat "$T/proxy.port")

write_syncd_conf "$T/syncd.conf" "$SRC" "$PROXY" "connections_per_server = 4"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

timeout -s KILL 300 "$FERRY_SYNCD" -c "$T/syncd.conf" --once --json >"$T/pass.json" 2>"$T/log/syncd.log"
check_output "the pass through the slow destination exits 0" 0 echo $?
if grep -q "one more connection pair" "$T/log/syncd.log"; then
	ok "the measured APPEND time opened more connection pairs: $(grep -c 'one more connection pair' "$T/log/syncd.log")"
else
	not_ok "the measured APPEND time opened more connection pairs" \
		"$(grep -E 'pair|pass 1' "$T/log/syncd.log" | tail -5)"
fi
max=$(cat "$T/proxy.port.max")
if [ "$max" -ge 2 ] && [ "$max" -le 4 ]; then
	ok "never more connections than connections_per_server ($max of 4)"
else
	not_ok "never more connections than connections_per_server" "$max"
fi
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass | cut -f2,3 | sort >"$T/src.d"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass | cut -f2,3 | sort >"$T/dst.d"
if [ "$(wc -l <"$T/src.d")" -eq 200 ] && cmp -s "$T/src.d" "$T/dst.d"; then
	ok "every message on the destination once, byte for byte"
else
	not_ok "every message on the destination once, byte for byte" \
		"$(wc -l <"$T/src.d") vs $(wc -l <"$T/dst.d")" "$(diff "$T/src.d" "$T/dst.d" | head -5)"
fi

done_testing
