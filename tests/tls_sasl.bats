#!/usr/bin/env bats
# SASL credentials only over a verified channel (issue 16): a relay we
# hold a password for gets smtp_sasl_tls_security_level (secure) unless
# its smtp_tls_policy_maps entry says otherwise. The relay is a recording
# fake (tests/helpers/tls_relay.py) with a self-signed certificate, as a
# man in the middle would have, and with one from the test CA.

load helpers/suite
load helpers/peers
load helpers/tls_peers

setup() {
	peers_setup
	SINK_PORT=$(free_port)
}

teardown() {
	peers_teardown
}

job() {
	run deliver_job --nexthop "$1" --from a@example.org --to b@example.net
	echo "$output"
}

@test "SASL: no password to an unverified relay; to a verified one, or where the policy says so" {
	tls_test_pki
	R_SELF=$(free_port) R_GOOD=$(free_port) R_ENC=$(free_port)
	"$BATS_TEST_DIRNAME/helpers/tls_relay.py" "$T/relay.log" \
		"$R_SELF:$T/pki/self.pem:$T/pki/self.key" \
		"$R_GOOD:$T/pki/good.pem:$T/pki/good.key" \
		"$R_ENC:$T/pki/self.pem:$T/pki/self.key" >"$T/relay.out" 2>&1 &
	PEER_PIDS+=($!)
	wait_for_log listening 30 "$T/relay.out"
	start_dnsmasq --host-record=relay.tls.test,127.0.0.1
	printf '[relay.tls.test]:%s bob:s3cret\n' "$R_SELF" "$R_GOOD" "$R_ENC" \
		> "$T/conf/sasl_passwd"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/sasl_passwd"
	printf '[relay.tls.test]:%s encrypt\n' "$R_ENC" > "$T/conf/tls_policy"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/tls_policy"
	suite_conf smtp_sasl_password_maps "hash:$T/conf/sasl_passwd"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_start

	# Self-signed: the handshake is done, the password is not sent.
	job "[relay.tls.test]:$R_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host relay.tls.test[127.0.0.1]:$R_SELF could not be verified (level secure): untrusted issuer or chain: self-signed certificate (SASL credentials go only over a channel of smtp_sasl_tls_security_level)"* ]]
	grep -q "^$R_SELF plain STARTTLS" "$T/relay.log"
	! grep -q "^$R_SELF .*AUTH" "$T/relay.log"
	! grep -q "^$R_SELF .*MAIL" "$T/relay.log"

	# The test CA's certificate for relay.tls.test: AUTH, then the mail.
	job "[relay.tls.test]:$R_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 queued"* ]]
	wait_for_log "Verified TLS connection established to relay.tls.test\[127.0.0.1\]:$R_GOOD: TLSv1.3 with cipher "
	wait_for_log "authenticated to relay.tls.test\[127.0.0.1\]:$R_GOOD as bob"
	grep -q "^$R_GOOD tls AUTH PLAIN AGJvYgBzM2NyZXQ=" "$T/relay.log"
	! grep -q "^$R_GOOD plain AUTH" "$T/relay.log"

	# Its own policy entry (encrypt) lets the password go over any TLS.
	job "[relay.tls.test]:$R_ENC"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "Untrusted TLS connection established to relay.tls.test\[127.0.0.1\]:$R_ENC"
	grep -q "^$R_ENC tls AUTH PLAIN" "$T/relay.log"
}

@test "implicit TLS (smtp_tls_wrappermode): handshake first, the password only to a verified relay" {
	tls_test_pki
	R_SELF=$(free_port) R_GOOD=$(free_port)
	"$BATS_TEST_DIRNAME/helpers/tls_relay.py" "$T/relay.log" \
		"$R_SELF:$T/pki/self.pem:$T/pki/self.key:implicit" \
		"$R_GOOD:$T/pki/good.pem:$T/pki/good.key:implicit" \
		>"$T/relay.out" 2>&1 &
	PEER_PIDS+=($!)
	wait_for_log listening 30 "$T/relay.out"
	start_dnsmasq --host-record=relay.tls.test,127.0.0.1
	printf '[relay.tls.test]:%s bob:s3cret\n' "$R_SELF" "$R_GOOD" \
		> "$T/conf/sasl_passwd"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/sasl_passwd"
	suite_conf smtp_sasl_password_maps "hash:$T/conf/sasl_passwd"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_wrappermode yes
	suite_start

	job "[relay.tls.test]:$R_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 queued"* ]]
	wait_for_log "Verified TLS connection established to relay.tls.test\[127.0.0.1\]:$R_GOOD: TLSv1.3 with cipher "
	# Every command went over TLS, the first EHLO included; no STARTTLS.
	grep -q "^$R_GOOD tls EHLO mx.postern.test" "$T/relay.log"
	grep -q "^$R_GOOD tls AUTH PLAIN" "$T/relay.log"
	! grep -q "^$R_GOOD plain" "$T/relay.log"
	! grep -q "STARTTLS" "$T/relay.log"

	job "[relay.tls.test]:$R_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host relay.tls.test[127.0.0.1]:$R_SELF could not be verified (level secure)"* ]]
	! grep -q "^$R_SELF .*AUTH" "$T/relay.log"

	# A server that does not speak TLS at once: deferred, nothing in clear.
	start_sink plain 127.0.0.1:$SINK_PORT
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the TLS handshake with host 127.0.0.1[127.0.0.1]:$SINK_PORT failed: "* ]]
	! grep -q "MAIL FROM" "$T/plain.out"
}
