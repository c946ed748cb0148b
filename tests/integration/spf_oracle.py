#!/usr/bin/python3
# spf_oracle.py - pyspf (Debian python3-spf) as an independent SPF oracle
# for tests/integration/test_spf_oracle.sh.
#
#   /usr/bin/python3 spf_oracle.py PORT CHECK...
#
# CHECK is "CLIENT_IP,HELO,MAIL_FROM" as for spf_probe (MAIL_FROM empty
# for <>: pyspf then checks postmaster@HELO).  Prints "N VERDICT" per
# CHECK, N from 1, VERDICT in RFC 7208 words (pass, fail, softfail,
# neutral, none, temperror, permerror).
#
# pyspf asks DNS through dnspython's default resolver, which reads
# /etc/resolv.conf and knows only port 53; it is replaced here by one that
# sends every query to 127.0.0.1:PORT (the test's dnsmasq) and nothing
# else.  Exit 2 on usage errors, 1 when pyspf is not installed.
import sys

try:
    import dns.resolver
    import spf
except ImportError as e:
    sys.stderr.write("spf_oracle: %s (install python3-spf)\n" % e)
    sys.exit(1)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: spf_oracle.py PORT IP,HELO,FROM...\n")
        return 2
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = int(argv[1])
    res.timeout = 3
    res.lifetime = 5
    res.search = []
    dns.resolver.default_resolver = res
    for n, spec in enumerate(argv[2:], 1):
        parts = spec.split(",", 2)
        if len(parts) != 3:
            sys.stderr.write("spf_oracle: bad check %r\n" % spec)
            return 2
        ip, helo, sender = parts
        result, _ = spf.check2(i=ip, s=sender, h=helo, querytime=10)
        print("%d %s" % (n, result.lower()))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
