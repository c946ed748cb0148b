#!/bin/bash
# test_syncd_interop.sh - ferry-syncd between Dovecot, Cyrus IMAP 3.6 and
# Courier-IMAP 5.0 (lib_servers.sh), each as source and as destination:
#
#   Dovecot -> Cyrus, Cyrus -> Dovecot, Dovecot -> Courier, Courier -> Dovecot
#
# For each pair: a full --once, a delta after new messages and a flag
# change, and a rerun that copies nothing.  After each run every message
# is checked byte for byte by an independent IMAP reader
# (mailbox_digest.py: SHA-256 of BODY.PEEK[], flags, INTERNALDATE), with
# the folder names mapped the way the servers name them (Courier keeps
# everything below "INBOX."), and the report's destination counts must
# match what that reader counts on the destination.  The folders are the
# generator's (nested, non-ASCII, "&", "Sent Items", "Junk E-mail"...).
# Then a message with UTF-8 in its header to a munging Cyrus (reported
# as altered), to one with munge8bit: no and to Courier (intact: it offers
# UTF8=ACCEPT, so the message goes in APPEND's UTF8 form), and a
# Cyrus over quota ([OVERQUOTA]: no APPEND storm, copied once raised).
. "$top_srcdir/tests/integration/lib.sh"
require_cmd dovecot doveadm "$FERRY_SYNCD"
export LC_ALL=C

GEN=$top_srcdir/bench/gen_mailbox.py
DIGEST=$TEST_DATA/mailbox_digest.py

cyrus_why=$(have_cyrus) && cyrus_ok=1 || cyrus_ok=
courier_why=$(have_courier) && courier_ok=1 || courier_ok=
[ -n "$cyrus_ok$courier_ok" ] ||
	skip_all "neither Cyrus ($cyrus_why) nor Courier ($courier_why) can run here"

DOVECOT_NAME=dov check "Dovecot starts" start_dovecot alice:pass bob:pass carol:pass dave:pass ||
	done_testing
DOV=$IMAP_PORT_dov
if [ -n "$cyrus_ok" ]; then
	CYRUS_NAME=cyr check "Cyrus starts" start_cyrus alice:pass bob:pass || cyrus_ok=
	CYR=${IMAP_PORT_cyr:-}
fi
if [ -n "$courier_ok" ]; then
	COURIER_NAME=cou check "Courier starts" start_courier alice:pass bob:pass ||
		courier_ok=
	COU=${IMAP_PORT_cou:-}
fi

# seed PORT USER START COUNT - generated messages APPENDed over IMAP
seed() {
	"$LIB_PYTHON" "$GEN" -q --seed 11 --start "$3" --count "$4" --scale 0.01 \
		--imap "127.0.0.1:$1" "$2" pass
}

# digest PORT USER - the independent reader's lines in one spelling:
# Courier's "INBOX/" prefix dropped from other folders, folder names
# decoded from modified UTF-7, the INTERNALDATE's day in two digits
# (Cyrus writes " 9-Jul-2018", Dovecot "09-Jul-2018": one date)
digest() {
	"$LIB_PYTHON" "$DIGEST" "$1" "$2" pass | "$LIB_PYTHON" -c '
import base64, re, sys
def mutf7(s):
    def dec(m):
        if m.group(1) == "":
            return "&"
        b = m.group(1).replace(",", "/")
        b += "=" * (-len(b) % 4)
        return base64.b64decode(b).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, s)
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    if f[0].startswith("INBOX/"):
        f[0] = f[0][6:]
    f[0] = mutf7(f[0])
    f[-1] = re.sub(r"^ ?(\d)-", r"0\1-", f[-1])
    print("\t".join(f))' | sort
}

# count_of PORT USER - "folder<TAB>messages" per folder, from the reader
count_of() {
	digest "$1" "$2" | cut -f1 | uniq -c |
		sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/'
}

# pair NAME SRCPORT SRCUSER DSTPORT DSTUSER
pair() {
	local name=$1 sp=$2 su=$3 dp=$4 du=$5 conf
	conf=$T/$name.conf
	cat >"$conf" <<EOF
[global]
state_dir = $T/state-$name
log = stderr
log_level = info

[syncd]
source = imap://127.0.0.1:$sp?tls=none
destination = imap://127.0.0.1:$dp?tls=none
accounts = $T/$name.accounts
tls_verify = no
EOF
	printf '%s pass %s pass\n' "$su" "$du" >"$T/$name.accounts"
	chmod 600 "$T/$name.accounts"

	run() {	# run STEP - --once --json into $T/NAME-STEP.json
		timeout -s KILL 300 "$FERRY_SYNCD" -c "$conf" --once --json \
			>"$T/$name-$1.json" 2>"$T/log/syncd-$name-$1.log"
	}
	same() { # same STEP - source and destination hold the same messages,
		# each in the folder the report says its folder went to
		digest "$sp" "$su" >"$T/$name-$1.src0"
		digest "$dp" "$du" >"$T/$name-$1.dst"
		"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
where = {f["source"]: f["destination"] for a in j["accounts"] for f in a["folders"]
         if f.get("destination")}
for line in open(sys.argv[2]):
    f = line.rstrip("\n").split("\t")
    f[0] = where.get(f[0], "NOT MAPPED:" + f[0])
    if f[0].startswith("INBOX/"):
        f[0] = f[0][6:]
    print("\t".join(f))' "$T/$name-$1.json" "$T/$name-$1.src0" | sort >"$T/$name-$1.src"
		if [ -s "$T/$name-$1.src" ] && cmp -s "$T/$name-$1.src" "$T/$name-$1.dst"; then
			ok "$name $1: every message on the destination, byte for byte, flags and dates ($(wc -l <"$T/$name-$1.src") messages)"
		else
			not_ok "$name $1: every message on the destination, byte for byte, flags and dates" \
				"$(diff "$T/$name-$1.src" "$T/$name-$1.dst" | head -10)"
		fi
	}
	counts() { # counts STEP - the report's destination counts = the reader's
		"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
for a in j["accounts"]:
    for f in a["folders"]:
        d, n = f.get("destination"), f.get("destination_count")
        if d and n:
            # the report names folders in UTF-8 with "/" between levels
            if d.startswith("INBOX/"):
                d = d[6:]
            print("%s\t%s" % (d, n))' "$T/$name-$1.json" |
			sort >"$T/$name-$1.rep"
		count_of "$dp" "$du" | sort >"$T/$name-$1.cnt"
		if [ -s "$T/$name-$1.rep" ] && cmp -s "$T/$name-$1.rep" "$T/$name-$1.cnt"; then
			ok "$name $1: the report's destination counts match an independent count"
		else
			not_ok "$name $1: the report's destination counts match an independent count" \
				"$(diff "$T/$name-$1.rep" "$T/$name-$1.cnt" | head -10)"
		fi
	}

	run full
	check_output "$name: the full pass exits 0" 0 echo $?
	same full
	counts full

	# Delta: new messages, and a flag set on the source.
	seed "$sp" "$su" 500 12 >/dev/null
	imap_cmd "$sp" "$su" pass 'SELECT INBOX' 'STORE 1 +FLAGS (\Flagged)' >/dev/null
	run delta
	check_output "$name: the delta pass exits 0" 0 echo $?
	same delta
	counts delta
	c=$("$LIB_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(f["copied"] for a in j["accounts"] for f in a["folders"]))' "$T/$name-delta.json")
	check_output "$name: the delta copies exactly the 12 new messages" 12 echo "$c"

	run rerun
	check_output "$name: a rerun exits 0" 0 echo $?
	c=$("$LIB_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(f["copied"] for a in j["accounts"] for f in a["folders"]))' "$T/$name-rerun.json")
	check_output "$name: a rerun copies nothing" 0 echo "$c"
	same rerun
}

seed "$DOV" alice 1 120 >/dev/null && seed "$DOV" carol 1 120 >/dev/null
check_output "Dovecot sources seeded" 0 echo $?

if [ -n "$cyrus_ok" ]; then
	pair dovecot-cyrus "$DOV" alice "$CYR" alice
	seed "$CYR" bob 1 120 >/dev/null
	check_output "Cyrus source seeded" 0 echo $?
	pair cyrus-dovecot "$CYR" bob "$DOV" bob
else
	skip "Dovecot <-> Cyrus: $cyrus_why"
fi
if [ -n "$courier_ok" ]; then
	pair dovecot-courier "$DOV" carol "$COU" alice
	seed "$COU" bob 1 120 >/dev/null
	check_output "Courier source seeded" 0 echo $?
	pair courier-dovecot "$COU" bob "$DOV" dave
else
	skip "Dovecot <-> Courier: $courier_why"
fi

# --- a message with raw UTF-8 in From: and Subject: -------------------------------
# Cyrus's default munge8bit rewrites 8-bit header bytes on APPEND, keeping
# the size: the copy must be reported as altered (exit 1, on every pass,
# never copied again); with munge8bit: no it arrives intact (exit 0), as
# it does on Courier (UTF8=ACCEPT); accept_altered = yes makes it a note.
eightbit() {	# eightbit FILE - a message with UTF-8 header bytes
	printf 'From: J\303\274rgen M\303\274ller <jm@example.com>\r\nTo: x@example.org\r\nSubject: Gr\303\274\303\237e aus M\303\274nchen\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <8bit.%s@interop.test>\r\n\r\nHallo.\r\n' "$RANDOM" >"$1"
}
eightbit_run() {	# eightbit_run NAME DSTPORT DSTUSER [EXTRA] - one pass from Dovecot's erin
	cat >"$T/$1.conf" <<EOF2
[global]
state_dir = $T/state-$1
log = stderr
${EIGHTBIT_GLOBAL:-}

[syncd]
source = imap://127.0.0.1:$DOV?tls=none
destination = imap://127.0.0.1:$2?tls=none
accounts = $T/$1.accounts
tls_verify = no
${4:-}
EOF2
	printf 'erin pass %s pass\n' "$3" >"$T/$1.accounts"
	chmod 600 "$T/$1.accounts"
	timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/$1.conf" --once --json \
		>"$T/$1.json" 2>>"$T/log/syncd-$1.log"
}
altered() {	# altered JSON - problems that say "altered by the destination"
	"$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(len([p for a in j["accounts"] for f in a["folders"] for p in f["problems"]
           if "altered by the destination" in (p["reason"] or "")]))' "$1"
}
eightbit "$T/8bit.eml"
DOVECOT_NAME=dov8 check "a second Dovecot for the 8-bit header case starts" \
	start_dovecot erin:pass || done_testing
DOV=$IMAP_PORT_dov8
check "the source holds a message with UTF-8 in From: and Subject:" \
	imap_append "$DOV" erin pass INBOX "$T/8bit.eml"
if [ -n "$cyrus_ok" ]; then
	CYRUS_NAME=cyr8 check "a Cyrus with its default munge8bit starts" \
		start_cyrus frank:pass gina:pass || done_testing
	eightbit_run cyr8a "$IMAP_PORT_cyr8" frank
	check_output "munge8bit: the pass exits 1" 1 echo $?
	check_output "munge8bit: the copy is reported as altered by the destination" 1 altered "$T/cyr8a.json"
	if grep -q "munge8bit: no" "$T/cyr8a.json"; then
		ok "munge8bit: the report names the remedy (munge8bit: no)"
	else
		not_ok "munge8bit: the report names the remedy (munge8bit: no)" \
			"$(grep -o '"reason": "[^"]*"' "$T/cyr8a.json" | head -3)"
	fi
	eightbit_run cyr8a "$IMAP_PORT_cyr8" frank
	check_output "munge8bit: the next pass still exits 1" 1 echo $?
	check_output "munge8bit: the next pass still reports it" 1 altered "$T/cyr8a.json"
	check_output "munge8bit: it is not copied again" 1 imap_count "$IMAP_PORT_cyr8" frank pass INBOX
	CYRUS_NAME=cyr8n CYRUS_EXTRA="munge8bit: no" check "a Cyrus with munge8bit: no starts" \
		start_cyrus frank:pass || done_testing
	eightbit_run cyr8n "$IMAP_PORT_cyr8n" frank
	check_output "munge8bit: no: the pass exits 0" 0 echo $?
	check_output "munge8bit: no: nothing altered" 0 altered "$T/cyr8n.json"
	"$LIB_PYTHON" "$DIGEST" "$DOV" erin pass | cut -f3 >"$T/8src"
	"$LIB_PYTHON" "$DIGEST" "$IMAP_PORT_cyr8n" frank pass | cut -f3 >"$T/8dst"
	check "munge8bit: no: the copy is byte for byte the message sent" cmp -s "$T/8src" "$T/8dst"
	# accept_altered = yes, against the munging Cyrus (another user)
	eightbit_run cyr8c "$IMAP_PORT_cyr8" gina "accept_altered = yes"
	check_output "accept_altered = yes: the pass exits 0" 0 echo $?
	check_output "accept_altered = yes: the alteration is still listed (as a note)" 1 altered "$T/cyr8c.json"
else
	skip "8-bit header to Cyrus: $cyrus_why"
fi
# --- Cyrus over quota: [OVERQUOTA] ends the account's APPENDs -----------------------
if [ -n "$cyrus_ok" ]; then
	CYRUS_NAME=cyrq CYRUS_QUOTA=40 check "a Cyrus with a 40 KB quota starts" \
		start_cyrus quinn:pass || done_testing
	DOVECOT_NAME=dovq check "a Dovecot source for the quota case starts" \
		start_dovecot quinn:pass || done_testing
	seed "$IMAP_PORT_dovq" quinn 1 120 >/dev/null
	cat >"$T/cyrq.conf" <<EOF2
[global]
state_dir = $T/state-cyrq
log = stderr
log_level = debug

[syncd]
source = imap://127.0.0.1:$IMAP_PORT_dovq?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_cyrq?tls=none
accounts = $T/cyrq.accounts
tls_verify = no
EOF2
	printf 'quinn pass quinn pass\n' >"$T/cyrq.accounts"
	chmod 600 "$T/cyrq.accounts"
	timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/cyrq.conf" --once --json \
		>"$T/cyrq.json" 2>"$T/log/syncd-cyrq.log"
	check_output "Cyrus over quota: the pass exits 1" 1 echo $?
	n=$(grep -cE 'dst:[^ ]*: C: A[0-9]+ APPEND ' "$T/log/syncd-cyrq.log")
	if [ "$n" -gt 0 ] && [ "$n" -le $((120 + 5)) ]; then
		ok "Cyrus over quota: no more APPENDs than messages plus a small constant ($n for 120)"
	else
		not_ok "Cyrus over quota: no more APPENDs than messages plus a small constant" "$n"
	fi
	left=$("$LIB_PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(len([p for a in j["accounts"] for f in a["folders"] for p in f["problems"]
           if "over quota" in (p["reason"] or "")]))' "$T/cyrq.json")
	copied=$("$LIB_PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(f["copied"] for a in j["accounts"] for f in a["folders"]))' "$T/cyrq.json")
	check_output "Cyrus over quota: every message copied or reported over quota" 120 echo $((left + copied))
	check "Cyrus: the quota is raised" cyrus_setquota cyrq quinn 100000
	timeout -s KILL 120 "$FERRY_SYNCD" -c "$T/cyrq.conf" --once --json \
		>"$T/cyrq2.json" 2>>"$T/log/syncd-cyrq.log"
	check_output "Cyrus: after the quota is raised the next pass completes" 0 echo $?
fi
if [ -n "$courier_ok" ]; then
	EIGHTBIT_GLOBAL="log_level = debug" eightbit_run cou8 "$COU" alice
	check_output "Courier (UTF8=ACCEPT): the 8-bit header message copies, exit 0" 0 echo $?
	check_output "Courier: nothing altered" 0 altered "$T/cou8.json"
	# RFC 6855 §4: ENABLE UTF8=ACCEPT, then APPEND ... UTF8 (~{n}...)
	check_output "Courier: UTF8=ACCEPT enabled on the destination" 1 \
		bash -c "grep -c 'dst:alice: C: [^ ]* ENABLE.* UTF8=ACCEPT' '$T/log/syncd-cou8.log'"
	check_output "Courier: the 8-bit header message is appended in the UTF8 form" 1 \
		bash -c "grep -c 'dst:alice: C: .*message 1:.* UTF8 (~{[0-9]*+\\{0,1\\}}' '$T/log/syncd-cou8.log'"
else
	skip "8-bit header to Courier: $courier_why"
fi

done_testing
