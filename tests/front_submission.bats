#!/usr/bin/env bats
# The submission front door: smtpd_sender_login_maps (Postfix's
# reject_sender_login_mismatch: an authenticated user sends only as the
# addresses the table gives it) and the rule that an unauthenticated
# client on a submission port may not claim a local domain. Real client:
# swaks over STARTTLS with AUTH PLAIN, from 127.0.0.1 (mynetworks) and
# 127.0.0.2 (a stranger); one suite for the whole file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	FILE_START=$(date +%s%N)
	export FILE_START
	suite_init
	smtp_maps
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
		-subj /CN=mx.postern.test -keyout "$T/conf/key.pem" \
		-out "$T/conf/cert.pem" 2>/dev/null
	chmod 600 "$T/conf/key.pem"
	printf 'alice %s\nbob %s\n' "$(openssl passwd -6 'alice-pw')" \
		"$(openssl passwd -6 'bob-pw')" > "$T/conf/sasl_users"
	"$POSTERN" -c "$T/conf" map build "$T/conf/sasl_users"
	cat > "$T/conf/senders" <<'MAP'
alice@postern.test	alice
shared@postern.test	alice, bob
@example.org		bob
MAP
	"$POSTERN" -c "$T/conf" map build "$T/conf/senders"
	suite_conf tls_cert_file "$T/conf/cert.pem"
	suite_conf tls_key_file "$T/conf/key.pem"
	suite_conf smtpd_sasl_users "hash:$T/conf/sasl_users"
	suite_conf smtpd_sender_login_maps "hash:$T/conf/senders"
	suite_conf submission_require_auth no
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
	echo "# front_submission.bats: $(( ($(date +%s%N) - FILE_START) / 1000000 )) ms" >&3
}

# MAIL on the submission port: SOURCE SENDER [swaks options]
mail_as() {
	swaks --server 127.0.0.1 --port "$SUBMISSION_PORT" --local-interface "$1" \
		--tls --helo client.example --from "$2" --to alice@postern.test \
		--quit-after FROM "${@:3}"
}

login() {	# USER
	echo --auth PLAIN --auth-user "$1" --auth-password "$1-pw"
}

@test "an authenticated user sends only as the addresses the table gives it" {
	# shellcheck disable=SC2046
	run mail_as 127.0.0.2 alice@postern.test $(login alice)
	echo "$output"
	[[ "$output" == *"<~  250 2.1.0"* ]]
	run mail_as 127.0.0.2 shared@postern.test $(login alice)
	[[ "$output" == *"<~  250 2.1.0"* ]]
	run mail_as 127.0.0.2 bob@example.org $(login alice)
	echo "$output"
	[[ "$output" == *"<~* 553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice"* ]]
	# Not in the table at all: owned by nobody.
	run mail_as 127.0.0.1 someone@example.net $(login alice)
	[[ "$output" == *"<~* 553 5.7.1 <someone@example.net>: Sender address rejected: not owned by user alice"* ]]
	run mail_as 127.0.0.2 '<>' $(login alice)
	[[ "$output" == *"<~* 553 5.7.1 <>: Sender address rejected: not owned by user alice"* ]]
	# bob owns all of example.org (@example.org) and shares shared@.
	run mail_as 127.0.0.2 anyone@example.org $(login bob)
	[[ "$output" == *"<~  250 2.1.0"* ]]
	run mail_as 127.0.0.2 shared@postern.test $(login bob)
	[[ "$output" == *"<~  250 2.1.0"* ]]
	run mail_as 127.0.0.2 alice@postern.test $(login bob)
	[[ "$output" == *"<~* 553 5.7.1 <alice@postern.test>: Sender address rejected: not owned by user bob"* ]]
	wait_for_log "NOQUEUE: reject: MAIL from unknown\[127.0.0.2\]: 553 5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice"
}

@test "without a login, a submission client may not claim a local or owned sender" {
	run mail_as 127.0.0.2 alice@postern.test
	echo "$output"
	[[ "$output" == *"<~* 553 5.7.1 <alice@postern.test>: Sender address rejected: not logged in"* ]]
	# A local domain, even for an address the table does not list.
	run mail_as 127.0.0.2 nobody@postern.test
	[[ "$output" == *"<~* 553 5.7.1 <nobody@postern.test>: Sender address rejected: not logged in"* ]]
	# An address the table gives an owner (@example.org is bob's).
	run mail_as 127.0.0.2 x@example.org
	[[ "$output" == *"<~* 553 5.7.1 <x@example.org>: Sender address rejected: not logged in"* ]]
	# A foreign, unowned sender passes MAIL (RCPT rules still apply).
	run mail_as 127.0.0.2 someone@example.net
	[[ "$output" == *"<~  250 2.1.0"* ]]
	# mynetworks is trusted without a login, as before.
	run mail_as 127.0.0.1 alice@postern.test
	[[ "$output" == *"<~  250 2.1.0"* ]]
	# The MX role (port 25) is not a submission port.
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --local-interface 127.0.0.2 \
		--from alice@postern.test --to alice@postern.test --quit-after FROM
	[[ "$output" == *"<-  250 2.1.0"* ]]
	wait_for_log "NOQUEUE: reject: MAIL from unknown\[127.0.0.2\]: 553 5.7.1 <alice@postern.test>: Sender address rejected: not logged in"
}
