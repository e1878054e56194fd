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
	file_timer_start
	suite_init
	smtp_maps
	suite_tls_selfsigned
	suite_sasl_users alice alice-pw bob bob-pw
	cat > "$T/conf/senders" <<'MAP'
alice@postern.test	alice
shared@postern.test	alice, bob
@example.org		bob
MAP
	"$POSTERN" -c "$T/conf" map build "$T/conf/senders"
	suite_conf smtpd_sender_login_maps "hash:$T/conf/senders"
	suite_conf submission_require_auth no
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_peername_lookup no
	# Relayed mail for authrelay.test goes to B's submission port, where
	# our deliver logs in as carol (the AUTH= test).
	B_SUB_PORT=$(free_port)
	export B_SUB_PORT
	printf 'authrelay.test smtp:[127.0.0.1]:%s\n' "$B_SUB_PORT" > "$T/conf/transport"
	"$POSTERN" -c "$T/conf" map build "$T/conf/transport"
	printf '[127.0.0.1]:%s carol:carol-pw\n' "$B_SUB_PORT" > "$T/conf/sasl_passwd"
	"$POSTERN" -c "$T/conf" map build "$T/conf/sasl_passwd"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf smtp_sasl_password_maps "hash:$T/conf/sasl_passwd"
	# Peer B's certificate is self-signed: the password may go over
	# its encrypted but unverified channel only when we say so.
	suite_conf smtp_sasl_tls_security_level encrypt
	start_peer_b
	suite_start
}

# A second postern, B, takes authrelay.test on its submission port after
# AUTH (carol) and keeps what it gets in its queue.
start_peer_b() {
	B=$T/b
	instance_conf "$B" mx2.postern.test
	cat >> "$B/conf/postern.conf" <<CONF
mydomains = authrelay.test
smtp_listen = 127.0.0.1:$(free_port)
submission_listen = 127.0.0.1:$B_SUB_PORT
mynetworks = [::1]/128
smtpd_sasl_users = hash:$B/conf/sasl_users
lmtp_listen = unix:$B/run/lmtp
lmtp_destination = unix:$B/run/nowhere
mailbox_base = $T/mail
smtpd_peername_lookup = no
tls_cert_file = $T/conf/cert.pem
tls_key_file = $T/conf/key.pem
process_min_idle = 1
minimal_backoff = 60s
queue_run_delay = 60s
CONF
	sasl_users_build "$B/conf" carol carol-pw
	instance_start "$B"
	echo $! > "$T/b.pid"
	export B
	wait_for_port "$B_SUB_PORT" 10
}

teardown_file() {
	local pid
	pid=$(cat "$T/b.pid" 2>/dev/null)
	[ -z "$pid" ] || instance_stop "$pid"
	suite_stop
	file_timer_report
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

# smtplib with a MAIL parameter: PORT USER(or -) SENDER RCPT AUTH-VALUE
auth_param_send() {
	python3 - "$@" <<'PY'
import smtplib, ssl, sys
port, user, sender, rcpt, auth = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(port), timeout=20) as c:
    c.starttls(context=ctx)
    if user != "-":
        c.login(user, user + "-pw")
    msg = "Subject: AUTH= test\r\n\r\nhello\r\n"
    c.ehlo()
    code, text = c.mail(sender, ["AUTH=" + auth])
    print(code, text.decode())
    c.rcpt(rcpt)
    code, text = c.data(msg)
    print(code, text.decode())
PY
}

@test "AUTH= is recorded in the queue file and passed on to a relay we log in to" {
	# An authenticated client's mailbox is kept (RFC 4954 5), xtext
	# decoded (a local recipient: the file stays in our queue)...
	run auth_param_send "$SUBMISSION_PORT" alice alice@postern.test \
		alice@postern.test 'alice+2Bx@postern.test'
	echo "$output"
	[[ "$output" == *"250 2.1.0"* ]]
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool show "$id"
	echo "$output"
	[[ "$output" == *'"auth": "alice+x@postern.test"'* ]]
	# ...and to a relay, deliver logs in to B and passes it on; B
	# records what it got.
	run auth_param_send "$SUBMISSION_PORT" alice alice@postern.test \
		someone@authrelay.test 'alice+2Bx@postern.test'
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	wait_for_log "authenticated to 127.0.0.1\[127.0.0.1\]:$B_SUB_PORT as carol" 20
	wait_for_log "to=<someone@authrelay.test>, relay=127.0.0.1\[127.0.0.1\]:$B_SUB_PORT, .*status=sent" 20
	bid=$(python3 "$HELPERS/smtp_queue.py" ids "$B/queue" | head -n1)
	[ -n "$bid" ]
	run python3 "$HELPERS/smtp_queue.py" show "$B/queue" "$bid"
	echo "$output"
	[[ "$output" == *'"auth": "alice+x@postern.test"'* ]]
	[[ "$output" == *'"sasl_user": "carol"'* ]]
	# A client that has not logged in: as if AUTH=<> (mynetworks, so
	# MAIL itself is allowed).
	run auth_param_send "$SUBMISSION_PORT" - someone@example.net \
		alice@postern.test 'forged@postern.test'
	echo "$output"
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool show "$id"
	[[ "$output" == *'"auth": "<>"'* ]]
}
