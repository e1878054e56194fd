#!/usr/bin/env bats
# compat: postern's smtpd against Postfix's smtpd, reply by reply. Both
# serve the same local domain (postern.test, user alice, alias root), deny
# relaying to 127.0.0.1, limit messages to 100000 bytes and transactions to
# 3 recipients; tests/helpers/smtp_compat.py drives both with the same raw
# bytes and compares basic and enhanced codes (not the text). Differences
# we keep on purpose are recorded in its table with the reason.
# Needs root: "postfix start" runs Postfix's own master.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/peers

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for postfix start"
	command -v postfix >/dev/null || skip "postfix not installed"
	suite_init
	smtp_maps
	suite_conf mynetworks 192.0.2.0/24
	suite_conf message_size_limit 100000
	suite_conf smtpd_recipient_limit 3
	# 127.0.0.1 is a stranger here, so MAIL runs smtpd_spf's check
	# (recorded, never a different reply): its look-ups go to the
	# suite's loopback dns_servers, where nothing answers, not to the
	# machine's resolver, whose delays once held a MAIL reply past the
	# client's 3 s.
	suite_start
	# Later lines of main.cf win: these replace the peer's relay set-up
	# with a local domain like postern's.
	PF_SIZE_LIMIT=100000
	PF_EXTRA="myhostname = mx.postern.test
mydestination = postern.test, localhost
local_recipient_maps = inline:{ alice@postern.test=x, carol@localhost=x, root@postern.test=x }
local_transport = discard:
relay_domains =
mynetworks = 192.0.2.0/24
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_recipient_limit = 3
smtpd_error_sleep_time = 0
smtpd_tls_security_level = none
smtpd_tls_cert_file =
smtpd_tls_key_file =
disable_vrfy_command = no"
	export PF_SIZE_LIMIT PF_EXTRA
	postfix_peer_start
	export P PF_PORT
}

teardown_file() {
	postfix_peer_stop
	suite_stop
}

compat() {
	run python3 "$BATS_TEST_DIRNAME/helpers/smtp_compat.py" \
		"$PF_PORT" "$SMTP_PORT" "$@"
	printf '# %s\n' "${lines[@]}" >&3
	[ "$status" -eq 0 ]
}

@test "compat: command order" { compat order-; }
@test "compat: unknown and malformed commands, HELO/EHLO" { compat cmd- helo- ehlo-; }
@test "compat: MAIL FROM syntax" { compat mail-; }
@test "compat: SIZE and BODY (NOTIFY, ORCPT: with RCPT)" { compat size- body-; }
@test "compat: RCPT syntax and policy" { compat rcpt-; }
@test "compat: DATA and pipelining" { compat data- pipelined-; }
@test "compat: BDAT" { compat bdat-; }
@test "compat: VRFY, EXPN, HELP, NOOP, RSET, QUIT, AUTH, STARTTLS" { compat vrfy- expn help noop- rset- quit auth- starttls-; }
@test "compat: NUL, bare LF, long lines" { compat nul- bare- long-; }

@test "compat: every case of the table belongs to one of the tests above" {
	run python3 - "$BATS_TEST_DIRNAME" <<'PY'
import re, sys
sys.path.insert(0, sys.argv[1] + "/helpers")
import smtp_compat
prefixes = []
for line in open(sys.argv[1] + "/compat.bats"):
    m = re.search(r"\{ compat (.*); \}", line)
    if m:
        prefixes += m.group(1).split()
missing = [c[0] for c in smtp_compat.CASES
           if not any(c[0].startswith(p) for p in prefixes)]
print(" ".join(missing))
sys.exit(1 if missing or not prefixes else 0)
PY
	echo "$output"
	[ "$status" -eq 0 ]
}
