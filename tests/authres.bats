#!/usr/bin/env bats
# Inbound mail authentication end to end (issue 15): a message submitted
# with AUTH to one postern (the sender: signs it rsa-sha256 and
# ed25519-sha256 for sign.test) goes over SMTP to a second postern (the
# MX of postern.test), which checks SPF at MAIL, every DKIM signature and
# DMARC at the end of the message, and prepends one
# Authentication-Results field with its authserv-id (mx.postern.test).
# The delivered message must carry spf=pass, dkim=pass for both
# signatures and dmarc=pass, and the signatures must still verify with
# two implementations independent of postern: python3-dkim (dkimpy) and
# OpenDKIM's opendkim-testmsg. A message arriving with a forged
# Authentication-Results field claiming the MX's id loses it (deleted,
# as OpenDMARC does; RFC 8601 5), while another server's field is kept.
# Records (SPF, DKIM keys, DMARC) are served by dnsmasq on loopback.
# Two suite starts (the sender and the MX), one for the file's tests.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/peers
load helpers/dkim
load helpers/authres

setup_file() {
	file_timer_start
	# The MX.
	suite_init
	MX_T=$T MX_SMTP_PORT=$SMTP_PORT
	authres_mx_conf
	# The sender: submission with AUTH over TLS, DKIM keys for sign.test.
	suite_init
	SUB_T=$T SUB_SMTP_PORT=$SMTP_PORT SUB_SUBMISSION_PORT=$SUBMISSION_PORT
	suite_tls_selfsigned out.sign.test
	suite_sasl_users alice 'alice secret'
	dkim_sign_test_keys "$MX_T/records"
	printf 'sign.test rsa1:%s, ed1:%s\n' "$T/conf/dkim/sign.test.rsa1.key" \
		"$T/conf/dkim/sign.test.ed1.key" > "$T/conf/dkim_signing"
	"$POSTERN" -c "$T/conf" map build "$T/conf/dkim_signing"
	printf 'postern.test smtp:[127.0.0.1]:%s\n' "$MX_SMTP_PORT" > "$T/conf/transport"
	"$POSTERN" -c "$T/conf" map build "$T/conf/transport"
	suite_conf myhostname out.sign.test
	suite_conf mydomains localhost
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf dkim_signing_maps "hash:$T/conf/dkim_signing"

	# DNS for both, from the MX's directory.
	T=$MX_T SMTP_PORT=$MX_SMTP_PORT
	local args=() rc=0
	mapfile -t args < <(authres_zone_args; records_args "$MX_T/records")
	start_dnsmasq "${args[@]}"
	export MX_T MX_SMTP_PORT SUB_T SUB_SUBMISSION_PORT
	# Each master's PID is kept even when its start fails (teardown).
	suite_start || rc=1
	export MX_PID=$SUITE_PID
	[ "$rc" -eq 0 ]
	T=$SUB_T SMTP_PORT=$SUB_SMTP_PORT
	suite_conf dns_servers "127.0.0.1:$DNS_PORT"
	suite_start || rc=1
	export SUB_PID=$SUITE_PID
	[ "$rc" -eq 0 ]
}

teardown_file() {
	peers_stop
	local rc=0
	T=$SUB_T SUITE_PID=${SUB_PID:-} suite_stop || rc=1
	T=$MX_T SUITE_PID=${MX_PID:-} suite_stop || rc=1
	file_timer_report
	return $rc
}

dkim_check() {
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/dkim_check.py" "$@"
}

# The message as it was sent: lmtpd stores LF line ends.
as_sent() {
	sed 's/$/\r/' "$1"
}

@test "submitted with AUTH, signed, checked at the MX: spf, dkim (rsa, ed25519) and dmarc pass; dkimpy and OpenDKIM accept it" {
	swaks --server 127.0.0.1 --port "$SUB_SUBMISSION_PORT" --tls \
		--auth PLAIN --auth-user alice --auth-password 'alice secret' \
		--silent 2 --from alice@sign.test --to bob@postern.test \
		--header 'From: Alice <alice@sign.test>' --header 'Subject: checked' \
		--body $'Hello Bob,\r\n\r\n  spaced   out  \r\n'
	local msg
	T=$MX_T
	msg=$(mx_message bob)
	cat "$msg"
	# One field of ours, right below our Received field.
	[ "$(grep -c '^Authentication-Results:' "$msg")" -eq 1 ]
	sed -n 2,20p "$msg" | grep -q '^Authentication-Results: mx.postern.test;'
	[ "$(sed -n '/^Received:/{=;q}' "$msg")" -lt "$(sed -n '/^Authentication-Results:/{=;q}' "$msg")" ]
	# The field unfolded: one result per line.
	sed -n '/^Authentication-Results:/,/^[^\t]/p' "$msg" > "$T/ar"
	grep -qE $'^\tspf=pass .* smtp.mailfrom=alice@sign.test;' "$T/ar"
	grep -qE $'^\tdkim=pass .* header.d=sign.test header.s=rsa1 header.a=rsa-sha256 header.b=[A-Za-z0-9+/]{8};' "$T/ar"
	grep -qE $'^\tdkim=pass .* header.d=sign.test header.s=ed1 header.a=ed25519-sha256 header.b=' "$T/ar"
	grep -qE $'^\tdmarc=pass \\(p=reject sp=reject pct=100 dis=none\\) header.from=sign.test policy.dmarc=none' "$T/ar"
	# The MX's log line of the message.
	local id
	id=$(grep -o 'by mx.postern.test (postern) with ESMTPS\? id [0-9A-Za-z]*' "$msg" | awk '{print $NF}')
	[ -n "$id" ]
	grep -q "smtpd\[[0-9]*\]: $id: spf=pass (mailfrom sign.test), spf_helo=none (out.sign.test), dkim=pass (sign.test), dkim=pass (sign.test), dmarc=pass (sign.test p=reject dis=none)" "$T/log"
	# Two verifiers independent of postern accept the delivered message.
	as_sent "$msg" > "$T/sent.eml"
	run dkim_check "$T/sent.eml" "$T/records"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"d=sign.test s=rsa1 a=rsa-sha256 pass"* ]]
	[[ "$output" == *"d=sign.test s=ed1 a=ed25519-sha256 pass"* ]]
	dkim_check "$T/sent.eml" "$T/records" --without 1 > "$T/only-rsa.eml"
	run opendkim_verify "$T/only-rsa.eml"
	echo "opendkim: $output"
	[ "$status" -eq 0 ]
	# (That the verifiers can fail is shown in tests/dkim.bats.)
}

@test "a stranger's forged Authentication-Results with the MX's id is removed, another server's kept; no signature is dkim=none" {
	T=$MX_T
	rm -f "$T"/mail/postern.test/bob/new/*
	swaks --server 127.0.0.1 --port "$MX_SMTP_PORT" --silent 2 \
		--from someone@nospf.test --to bob@postern.test \
		--header 'From: someone@nospf.test' --header 'Subject: forged results' \
		--add-header 'Authentication-Results: mx.postern.test; dkim=pass header.d=bank.test' \
		--add-header $'Authentication-Results: (fake)\r\n MX.Postern.Test;\r\n\tdmarc=pass header.from=bank.test' \
		--add-header 'Authentication-Results: relay.other.test; spf=pass smtp.mailfrom=x@other.test'
	local msg
	msg=$(mx_message bob)
	cat "$msg"
	[ "$(grep -ci '^Authentication-Results: *mx.postern.test' "$msg")" -eq 1 ]
	[ "$(grep -c 'bank.test' "$msg")" -eq 0 ]
	grep -q '^Authentication-Results: relay.other.test; spf=pass' "$msg"
	sed -n '/^Authentication-Results: mx/,/^[^\t]/p' "$msg" > "$T/ar"
	grep -qE $'^\tspf=none .* smtp.mailfrom=someone@nospf.test;' "$T/ar"
	grep -qE $'^\tdkim=none \\(no signature\\);' "$T/ar"
	grep -qE $'^\tdmarc=none header.from=nospf.test' "$T/ar"
	grep -q 'removed 2 Authentication-Results fields claiming authserv-id mx.postern.test from unknown\[127.0.0.1\]' "$T/log"
}
