#!/usr/bin/env bats
# smtpd_milters with OpenDKIM (issue 14), set up as OpenDKIM documents it
# for Postfix (Mode s, a selector, a key, `Socket inet:PORT@127.0.0.1`,
# `smtpd_milters = inet:127.0.0.1:PORT`): a message submitted on the
# submission port leaves signed, and the signature verifies with an
# independent verifier (python3-dkim) against the public key
# opendkim-genkey wrote for DNS, given to the verifier by its dnsfunc.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/dkim

setup_file() {
	file_timer_start
	command -v opendkim >/dev/null || skip "opendkim is not installed"
	suite_init
	smtp_maps
	opendkim_start test
	suite_conf smtpd_milters "inet:127.0.0.1:$OPENDKIM_PORT"
	suite_conf submission_require_auth no
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_start
}

teardown_file() {
	pidfile_kill opendkim
	suite_stop || true
	file_timer_report
}

@test "OpenDKIM: mail from submission is queued DKIM-signed and python3-dkim verifies it" {
	run swaks --server 127.0.0.1 --port "$SUBMISSION_PORT" --helo client.example \
		--from alice@example.org --to bob@example.net \
		--header "Subject: signed by OpenDKIM" --body "Signed, through postern."
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	qtool content "$id" > "$T/content"
	cat "$T/content"
	grep -q "^DKIM-Signature: .*d=example.org" "$T/content" ||
		grep -A3 "^DKIM-Signature:" "$T/content" | grep -q "d=example.org"
	/usr/bin/python3 - "$T/content" "$T/dkim/test.txt" <<'PY'
import re, sys
import dkim
msg = open(sys.argv[1], "rb").read()
# test.txt is the zone-file line: the record is its quoted strings joined.
record = "".join(re.findall(r'"([^"]*)"', open(sys.argv[2]).read())).encode()
def dnsfunc(name, timeout=5):
    assert name == b"test._domainkey.example.org.", name
    return record
assert dkim.verify(msg, dnsfunc=dnsfunc), "the signature does not verify"
# and a changed body does not: the check is real
assert not dkim.verify(msg.replace(b"Signed, through", b"Forged, through"),
                       dnsfunc=dnsfunc)
PY
}
