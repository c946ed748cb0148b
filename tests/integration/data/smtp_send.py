# smtp_send.py PORT FROM RCPT[,RCPT...] FILE - send FILE (LF or CRLF
# line ends) to 127.0.0.1:PORT in one SMTP session; print every refusal as
# "STAGE CODE TEXT" and, when the message got to DATA, the final
# "DATA CODE TEXT" (so the last line is the outcome); exit 2 when the
# session itself failed.  Used by the relay's integration tests.
import re, smtplib, sys
port, sender, rcpts, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = re.sub(rb"\r?\n", b"\r\n", open(path, "rb").read())
def out(stage, code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    print("%s %d %s" % (stage, code, " ".join(text.split("\n"))))
try:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60)
    s.ehlo()
    code, text = s.mail(sender)
    if code != 250:
        out("MAIL", code, text); s.quit(); sys.exit(0)
    ok = 0
    for r in rcpts.split(","):
        code, text = s.rcpt(r)
        if code in (250, 251):
            ok += 1
        else:
            out("RCPT", code, text)
    if ok == 0:
        s.quit(); sys.exit(0)
    try:
        code, text = s.data(data)
        out("DATA", code, text)
    except smtplib.SMTPDataError as e:
        out("DATA", e.smtp_code, e.smtp_error)
    s.quit()
except (OSError, smtplib.SMTPException) as e:
    print("session failed: %r" % (e,), file=sys.stderr)
    sys.exit(2)
