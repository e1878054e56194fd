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

setup_file() {
	FILE_START=$(date +%s.%N)
	command -v opendkim >/dev/null || skip "opendkim is not installed"
	suite_init
	smtp_maps
	OPENDKIM_PORT=$(free_port)
	mkdir -p "$T/dkim"
	opendkim-genkey -D "$T/dkim" -d example.org -s test
	local user=
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$TEST_USER" "$T/dkim"
		user="UserID $TEST_USER"
	fi
	cat > "$T/dkim/opendkim.conf" <<CONF
Mode s
Domain example.org
Selector test
KeyFile $T/dkim/test.private
Socket inet:$OPENDKIM_PORT@127.0.0.1
Background no
PidFile $T/dkim/opendkim.pid
Syslog no
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
# The key lives under /tmp (world-writable): OpenDKIM refuses that
# unless told the test key need not be safe.
RequireSafeKeys false
$user
CONF
	opendkim -f -x "$T/dkim/opendkim.conf" >"$T/dkim/out" 2>&1 3>&- &
	echo $! > "$T/opendkim.pid"
	wait_for_port "$OPENDKIM_PORT" 30
	suite_conf smtpd_milters "inet:127.0.0.1:$OPENDKIM_PORT"
	suite_conf submission_require_auth no
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_start
	echo "$FILE_START" > "$T/start"
}

teardown_file() {
	local start=
	[ -f "$T/opendkim.pid" ] && kill "$(cat "$T/opendkim.pid")" 2>/dev/null
	read -r start < "$T/start" 2>/dev/null || true
	suite_stop || true
	[ -z "$start" ] || awk -v a="$start" -v b="$(date +%s.%N)" \
		'BEGIN { printf "# milter_opendkim.bats: %.1f s\n", b - a }' >&3
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
