#!/usr/bin/env bats
# DANE (RFC 7672 2.1.1, 2.2) when one address family of an MX host is
# bogus: the zone is signed at test time and the AAAA (or A) record of
# the host changed after signing, so that unbound answers SERVFAIL for
# that family while the other validates (tests/helpers/dane_dns.bash).
# The host keeps DANE on the family that validated, and the failure is
# logged: before, one forged family made the whole host insecure, and
# "dane" fell back to opportunistic TLS with any certificate. The peer
# is tests/helpers/tls_relay.py, an SMTP server with STARTTLS on
# 127.0.0.1 only, with a self-signed certificate of tls_test_pki
# (tests/helpers/tls_peers.bash), which records every command it gets
# and whether it came inside TLS. One suite start.

load helpers/suite
load helpers/peers
load helpers/tls_peers
load helpers/dane_dns

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

# After signing: the AAAA of mx6bad and mx6bad-wrong and the A of mx4bad
# no longer fit their RRSIGs.
dane_tamper() {
	local f="$T/dns/tls.test.served"
	sed -i -e 's/^\(mx6bad\(-wrong\)\?\.tls\.test\.\t.*\tAAAA\t\)::1$/\1::2/' \
		-e 's/^\(mx4bad\.tls\.test\.\t.*\tA\t\)127\.0\.0\.1$/\1127.0.0.2/' "$f"
	[ "$(grep -c 'AAAA	::2$' "$f")" -eq 2 ] && grep -q 'A	127.0.0.2$' "$f"
}

@test "DANE: a bogus AAAA (or A) of an MX host leaves DANE on its other family, logged, never a downgrade" {
	command -v unbound >/dev/null && command -v nsd >/dev/null &&
		command -v ldns-signzone >/dev/null ||
		skip "unbound, nsd and ldnsutils are needed"
	tls_test_pki
	PF_SELF=$(free_port)
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/tls_relay.py" "$T/relay.log" \
		"$PF_SELF:$T/pki/self.pem:$T/pki/self.key" > "$T/relay.out" 2>&1 &
	PEER_PIDS+=($!)
	wait_for_log listening 10 "$T/relay.out"
	local self good
	self=$(dane_spki_sha256 "$T/pki/self.pem")
	good=$(dane_spki_sha256 "$T/pki/good.pem")
	dane_zone tls.test signed <<-EOF
	mx6bad       IN A    127.0.0.1
	mx6bad       IN AAAA ::1
	mx6bad-wrong IN A    127.0.0.1
	mx6bad-wrong IN AAAA ::1
	mx4bad       IN A    127.0.0.1
	mx4bad       IN AAAA ::1
	v4           IN MX 10 mx6bad
	wrong        IN MX 10 mx6bad-wrong
	v6           IN MX 10 mx4bad
	_$PF_SELF._tcp.mx6bad       IN TLSA 3 1 1 $self
	_$PF_SELF._tcp.mx6bad-wrong IN TLSA 3 1 1 $good
	_$PF_SELF._tcp.mx4bad       IN TLSA 3 1 1 $self
	EOF
	dane_dns_start
	suite_conf smtp_tls_security_level dane
	suite_conf smtp_dns_support_level dnssec
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf deliver_processes 1
	suite_start

	# AAAA bogus, A validated: DANE over IPv4, the TLSA record matches.
	pf_job "v4.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	local q
	q=$(last_qid)
	grep -q "$q: Verified TLS connection established to mx6bad.tls.test\[127.0.0.1\]:$PF_SELF: .* (DANE)$" "$T/log"
	grep -q "$q: .*name=mx6bad.tls.test type=AAAA: .*: only the other address family of mx6bad.tls.test is used (DNSSEC-validated)" "$T/log"
	grep -q "$q: DANE TLSA 3 1 1 $self matched the certificate at depth 0" "$T/log"

	# The same with a TLSA record the certificate does not match: DANE
	# still holds, so the host defers (it used to go as "may").
	pf_job "wrong.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx6bad-wrong.tls.test[127.0.0.1]:$PF_SELF could not be verified (level dane)"* ]]
	! grep -q "$(last_qid): .*status=sent" "$T/log"
	# The relay got one message, inside TLS, and nothing in clear.
	[ "$(grep -c ' tls MAIL FROM:' "$T/relay.log")" -eq 1 ]
	! grep -q ' plain MAIL FROM:' "$T/relay.log"

	# A bogus, AAAA validated: only [::1] is tried, where nothing
	# listens; the forged IPv4 address is never used.
	pf_job "v6.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D "* ]]
	q=$(last_qid)
	grep -q "$q: .*name=mx4bad.tls.test type=A: .*: only the other address family of mx4bad.tls.test is used (DNSSEC-validated)" "$T/log"
	! grep -q "$q: .*127\.0\.0\.2" "$T/log"
	grep -q "validation failure <mx6bad.tls.test. AAAA IN>" "$T/dns/unbound.out"
}
