#!/usr/bin/env bats
# REQUIRETLS (RFC 8689, issue 16) between two postern instances: the
# suite's (A) takes "MAIL FROM:<...> REQUIRETLS" only inside TLS from
# Python's smtplib, records it in the queue file (Q record), and
# delivers it only over authenticated TLS to a server that offers
# REQUIRETLS: a second postern (B), which gets the parameter and records
# it too; a real Postfix (no REQUIRETLS) gets a 5.7.30 bounce, a
# self-signed one 5.7.10. "TLS-Required: No" lets a message through a
# destination whose policy would defer it. And transport_maps' smtps:
# (implicit TLS) to B's smtps listener. One start of each peer.

load helpers/suite
load helpers/peers
load helpers/tls_peers

setup() {
	peers_setup
	B_PID=
}

teardown() {
	[ -z "$B_PID" ] || instance_stop "$B_PID" 20
	peers_teardown
}

# B: a second postern with the suite's settings, its own places and
# ports, the good certificate, relaying b.test to a dead port so that
# what it accepted stays in its queue.
b_start() {
	B="$T/b"
	B_PORT=$(free_port)
	B_SMTPS=$(free_port)
	local dead
	dead=$(free_port)
	mkdir -p "$B/conf" "$B/mail"
	[ "$(id -u)" -ne 0 ] || chown "$TEST_USER" "$B/mail"
	sed -e "s#$T/queue#$B/queue#; s#$T/run#$B/run#; s#$T/mail#$B/mail#" \
		-e "s#127.0.0.1:$SMTP_PORT#127.0.0.1:$B_PORT#" \
		-e "s#127.0.0.1:$SUBMISSION_PORT#127.0.0.1:$(free_port)#" \
		-e "s#^myhostname = .*#myhostname = b.postern.test#" \
		"$T/conf/postern.conf" > "$B/conf/postern.conf"
	printf 'b.test smtp:[127.0.0.1]:%s\n' "$dead" > "$B/conf/transport"
	"$BUILD/postern" -c "$B/conf" map build "$B/conf/transport"
	cat >> "$B/conf/postern.conf" <<-EOF
	tls_cert_file = $T/pki/good.pem
	tls_key_file = $T/pki/good.key
	transport_maps = hash:$B/conf/transport
	smtps_listen = 127.0.0.1:$B_SMTPS
	EOF
	instance_start "$B"
	B_PID=$!
	wait_for_log 'daemon started' 30 "$B/log" && wait_for_port "$B_PORT" 30
}

send() {
	run /usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/requiretls_send.py" \
		"$SMTP_PORT" a@b.test "$@"
	echo "$output"
}

queued() {
	sed -n 's/^queued: //p' <<<"$output"
}

@test "REQUIRETLS: offered inside TLS, kept in the queue, carried on, bounced with 5.7.30 and 5.7.10; TLS-Required: No" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	tls_test_pki
	b_start
	tls_postfix_start
	start_dnsmasq --host-record=mx.tls.test,127.0.0.1
	table() { cat > "$T/conf/$1"; "$BUILD/postern" -c "$T/conf" map build "$T/conf/$1"; }
	table transport <<-EOF
	b.test smtp:[mx.tls.test]:$B_PORT
	tls-first@b.test smtps:[mx.tls.test]:$B_SMTPS
	good@pf.test smtp:[mx.tls.test]:$PF_GOOD
	self@pf.test smtp:[mx.tls.test]:$PF_SELF
	selfno@pf.test smtp:[mx.tls.test]:$PF_SELF
	EOF
	table tls_policy <<-EOF
	[mx.tls.test]:$PF_SELF secure
	EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf tls_cert_file "$T/pki/self.pem"
	suite_conf tls_key_file "$T/pki/self.key"
	suite_start

	# Not offered without TLS, and refused there (RFC 8689 2).
	send rt@b.test --no-tls --requiretls
	[[ "$output" == *"ehlo-plain: none"* ]]
	[[ "$output" == *"mail: 555 5.5.4 "* ]]

	# Inside TLS: taken, recorded, delivered to B over verified TLS with
	# the parameter, and recorded by B.
	send rt@b.test --requiretls
	[[ "$output" == *"ehlo-tls: REQUIRETLS"* ]]
	[[ "$output" == *"mail: 250 2.1.0"* ]]
	local qid bid
	qid=$(queued)
	wait_for_log "$qid: to=<rt@b.test>, relay=mx.tls.test\[127.0.0.1\]:$B_PORT, .*status=sent"
	grep -q "$qid: Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$B_PORT" "$T/log"
	bid=$(grep "$qid: to=<rt@b.test>" "$T/log" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p')
	run python3 "$BATS_TEST_DIRNAME/helpers/smtp_queue.py" show "$B/queue" "$bid"
	[[ "$output" == *'"requiretls": true'* ]]

	# Verified TLS, but Postfix does not offer REQUIRETLS: 5.7.30.
	send good@pf.test --requiretls
	qid=$(queued)
	wait_for_log "$qid: to=<good@pf.test>, .*dsn=5.7.30, status=bounced \(REQUIRETLS support required, but host mx.tls.test\[127.0.0.1\]:$PF_GOOD does not offer it\)"
	grep -q "$qid: Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD" "$T/log"

	# A self-signed certificate: 5.7.10, never plain text.
	send self@pf.test --requiretls
	qid=$(queued)
	wait_for_log "$qid: to=<self@pf.test>, .*dsn=5.7.10, status=bounced \(TLS is required, but the certificate of host mx.tls.test\[127.0.0.1\]:$PF_SELF could not be verified"

	# Without REQUIRETLS the destination's policy (secure) defers ...
	send selfno@pf.test
	qid=$(queued)
	wait_for_log "$qid: to=<selfno@pf.test>, .*dsn=4.7.5, status=deferred"
	# ... unless the message says TLS-Required: No (RFC 8689 5).
	send selfno@pf.test --header "TLS-Required: No"
	qid=$(queued)
	wait_for_log "$qid: to=<selfno@pf.test>, .*status=sent"
	grep -q "$qid: TLS-Required: No: the destination's TLS policy is not enforced" "$T/log"
	grep -q "$qid: Untrusted TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_SELF" "$T/log"

	# smtps: (implicit TLS) from transport_maps, to B's smtps listener.
	send tls-first@b.test
	qid=$(queued)
	wait_for_log "$qid: to=<tls-first@b.test>, relay=mx.tls.test\[127.0.0.1\]:$B_SMTPS, .*status=sent"
	grep -q "$qid: Trusted TLS connection established to mx.tls.test\[127.0.0.1\]:$B_SMTPS" "$T/log"
	wait_for_log "Anonymous TLS connection established from .*127.0.0.1" 10 "$B/log"

	# Postfix got only that one message.
	wait_until '[ "$(grep -c "discard.*status=sent" "$P/maillog")" -ge 1 ]' 10
	[ "$(grep -c 'status=sent' "$P/maillog")" -eq 1 ]
}
