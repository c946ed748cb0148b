#!/usr/bin/env python3
# hold_proxy.py - a proxy in front of a real IMAP server that holds back
# the answers to chosen commands, for syncd tests that check what the
# client sends before it has them:
#
#   hold_proxy.py PORTFILE SERVER_PORT LOG RULE...
#
# Listens on 127.0.0.1 (any port, written to PORTFILE) and relays every
# connection to 127.0.0.1:SERVER_PORT.  Each client command (the text
# after its tag) is matched against the rules, in order, first match:
#   hold:NAME=REGEX   logged "NAME TAG"; the server's data that carries
#                     its tagged answer is held 300 ms before it is
#                     passed on ("hold TAG", then "release TAG")
#   gate:NAME=REGEX   logged "NAME TAG"; the server's data that carries
#                     its tagged answer is held until the file LOG.open
#                     exists ("gate TAG", then "open TAG"), 60 s at most
#   note:NAME=REGEX   logged "NAME TAG" (and REGEX's first group, if any)
# The log is opened for appending, so a test may empty it between runs.
import asyncio
import os
import re
import sys

portfile, upstream, logname = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rules = []
for r in sys.argv[4:]:
    kind, rest = r.split(":", 1)
    name, rx = rest.split("=", 1)
    rules.append((kind, name, re.compile(rx.encode())))
held = set()            # tags whose answer is awaited and to be held
gated = set()           # tags whose answer waits for LOG.open
log = open(logname, "a", buffering=1)


async def client_to_server(r, w):
    buf = b""
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            buf = (buf + data)[-65536:]
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                m = re.match(rb"(\S+) (.*)", line)
                if not m:
                    continue
                tag, text = m.group(1), m.group(2)
                for kind, name, rx in rules:
                    mm = rx.match(text)
                    if not mm:
                        continue
                    extra = mm.group(1) if rx.groups else b""
                    log.write("%s %s%s\n" % (name, tag.decode(),
                              " " + extra.decode(errors="replace")
                              if extra else ""))
                    if kind == "hold":
                        held.add(tag)
                    elif kind == "gate":
                        gated.add(tag)
                    break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()


def answered(tags, data, after):
    """the tags of tags whose tagged answer (TAG, then after) is in data"""
    return [t for t in list(tags)
            if re.search(rb"(^|\r\n)" + re.escape(t) + re.escape(after), data)]


async def server_to_client(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            shut = answered(gated, data, b" ")
            if shut:
                for t in shut:
                    log.write("gate %s\n" % t.decode())
                for _ in range(1200):
                    if os.path.exists(logname + ".open"):
                        break
                    await asyncio.sleep(0.05)
                for t in shut:
                    gated.discard(t)
                    log.write("open %s\n" % t.decode())
            done = answered(held, data, b" OK")
            if done:
                for t in done:
                    log.write("hold %s\n" % t.decode())
                await asyncio.sleep(0.3)
                for t in done:
                    held.discard(t)
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
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.sockets[0].getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
