#!/bin/bash
# test_syncd_settle.sh - a folder's last faithful-copy check is answered
# while the next folder is being selected.  The check of a folder's last
# batch has no batch after it to overlap with; its answer is collected
# once the next folder's EXAMINE and SELECT are out, and only then is the
# folder's state recorded.  A proxy in front of the destination holds the
# answer to every check (UID FETCH ... BODY.PEEK[HEADER]) 300 ms and
# notes each SELECT the client sends before it has a check's answer: with
# three folders, the SELECTs of the second and third go out before the
# check of the folder before them is answered.  Every message arrives
# once, byte for byte, the pass is complete, and the next pass finds
# nothing to copy.
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
	local i=0 f
	for f in Alpha Beta Gamma; do
		"$LIB_PYTHON" "$GEN" -q --seed 4 --start $((i * 10)) --count 5 \
			--scale 0.01 --folder "$f" \
			--maildir "$T/dovecot/src/mail/alice/Maildir" || return 1
		i=$((i + 1))
	done
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/src/mail"
}
check "source: 5 messages in each of 3 folders" fill

cat >"$T/hold.py" <<'PYEOF'
import asyncio, re, sys
portfile, upstream, logname = sys.argv[1], int(sys.argv[2]), sys.argv[3]
checks = set()          # tags of check FETCHes
held = {"n": 0}         # answers being held now
# the log: "check TAG" (sent), "select NAME" (sent), "hold TAG" (its
# answer arrived and is held), "release TAG" (passed on to the client)
log = open(logname, "w", buffering=1)

async def client_to_server(r, w):
    buf = b""
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
            buf = (buf + data)[-65536:]
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                m = re.match(rb"(\S+) (UID FETCH|SELECT) (.*)", line)
                if not m:
                    continue
                tag, verb = m.group(1), m.group(2)
                if verb == b"UID FETCH" and b"BODY.PEEK[HEADER]" in line:
                    checks.add(tag)
                    log.write("check %s\n" % tag.decode())
                elif verb == b"SELECT":
                    log.write("select %s\n" % m.group(3).decode(
                        errors="replace"))
    except Exception:
        pass
    finally:
        w.close()

async def server_to_client(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            done = [t for t in checks
                    if re.search(rb"(^|\r\n)" + re.escape(t) + rb" OK", data)]
            if done:
                held["n"] += 1
                log.write("hold %s\n" % done[0].decode())
                await asyncio.sleep(0.3)
                held["n"] -= 1
                for t in done:
                    checks.discard(t)
                    log.write("release %s\n" % t.decode())
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()

async def handle(cr, cw):
    sr, sw = await asyncio.open_connection("127.0.0.1", upstream)
    await asyncio.gather(client_to_server(cr, sw), server_to_client(sr, cw))

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    open(portfile, "w").write("%d\n" % srv.sockets[0].getsockname()[1])
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
PYEOF
spawn holdproxy "$LIB_PYTHON" "$T/hold.py" "$T/proxy.port" "$DST" "$T/proxy.log"
for i in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
check "the holding proxy listens" test -s "$T/proxy.port"
PROXY=$(cat "$T/proxy.port")

write_syncd_conf "$T/syncd.conf" "$SRC" "$PROXY"
printf 'alice pass bob pass\n' >"$T/accounts"
chmod 600 "$T/accounts"

timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass1.out" 2>"$T/log/syncd.log"
check_output "the pass exits 0" 0 echo $?
checks=$(grep -c '^check ' "$T/proxy.log")
if [ "$checks" -ge 3 ]; then
	ok "every folder's copies were checked ($checks checks)"
else
	not_ok "every folder's copies were checked" "$(cat "$T/proxy.log")"
fi
# a SELECT between a check and the release of its answer
during=$(awk '$1 == "check" { open[$2] = 1 }
	$1 == "release" { delete open[$2] }
	$1 == "select" { for (t in open) { n++; break } }
	END { print n + 0 }' "$T/proxy.log")
if [ "$during" -ge 2 ]; then
	ok "the next folder's SELECT went out before the check of the one before was answered ($during times)"
else
	not_ok "the next folder's SELECT went out before the check of the one before was answered" \
		"$(cat "$T/proxy.log")"
fi
if grep -q "all 15 messages of the source are on the destination" "$T/pass1.out" "$T/log/syncd.log"; then
	ok "the pass is complete"
else
	not_ok "the pass is complete" "$(tail -3 "$T/log/syncd.log")"
fi
"$LIB_PYTHON" "$DIGEST" "$SRC" alice pass | cut -f1,2,3 | sort >"$T/src.d"
"$LIB_PYTHON" "$DIGEST" "$DST" bob pass | cut -f1,2,3 | sort >"$T/dst.d"
if [ "$(wc -l <"$T/src.d")" -eq 15 ] && cmp -s "$T/src.d" "$T/dst.d"; then
	ok "every message on the destination once, byte for byte"
else
	not_ok "every message on the destination once, byte for byte" \
		"$(diff "$T/src.d" "$T/dst.d" | head -5)"
fi
timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/syncd.conf" --once >"$T/pass2.out" 2>"$T/log/syncd2.log"
check_output "the second pass exits 0" 0 echo $?
if ! grep -q "copied=[1-9]" "$T/log/syncd2.log"; then
	ok "the second pass copies nothing"
else
	not_ok "the second pass copies nothing" "$(grep copied= "$T/log/syncd2.log")"
fi

done_testing
