#!/usr/bin/env bats
# DANE for SMTP (RFC 7672, issue 16): smtp_tls_security_level dane and
# dane-only against a real validating resolver (unbound) over zones
# signed at test time (ldns-signzone) and served by nsd
# (tests/helpers/dane_dns.bash), and a real Postfix peer with
# certificates from a test CA (tests/helpers/tls_peers.bash). One suite
# start; every case goes through deliver's own socket
# (tests/helpers/deliver-job). The TLSA names carry the Postfix
# listeners' ports (_PORT._tcp.HOST), so each case has its own host name.

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

# The signed TLSA record of mx-bogus is changed after signing: its
# RRSIG no longer fits, and unbound answers SERVFAIL (bogus).
dane_tamper() {
	sed -i "s/^\(_$PF_SELF\._tcp\.mx-bogus\.tls\.test\..*TLSA\t3 1 1 \).*/\1$(printf '%064d' 7)/" \
		"$T/dns/tls.test.served"
	grep -q "TLSA	3 1 1 $(printf '%064d' 7)" "$T/dns/tls.test.served"
}

@test "DANE: EE and TA match, mismatch, unusable, no TLSA, insecure and bogus zones, dane-only" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	command -v unbound >/dev/null && command -v nsd >/dev/null &&
		command -v ldns-signzone >/dev/null ||
		skip "unbound, nsd and ldnsutils are needed"
	tls_test_pki
	# DANE-TA(2): the server sends its chain up to the trust anchor
	# (RFC 7672 3.1.2).
	cat "$T/pki/ca.pem" >> "$T/pki/good.pem"
	cat "$T/pki/ca.pem" >> "$T/pki/wrong.pem"
	tls_postfix_start
	local ca self good wrong
	ca=$(dane_cert_sha256 "$T/pki/ca.pem")
	self=$(dane_spki_sha256 "$T/pki/self.pem")
	good=$(dane_spki_sha256 "$T/pki/good.pem")
	wrong=$(dane_spki_sha256 "$T/pki/wrong.pem")
	dane_zone tls.test signed <<-EOF
	mx        IN A 127.0.0.1
	mx-ee     IN A 127.0.0.1
	mx-taw    IN A 127.0.0.1
	mx-bad    IN A 127.0.0.1
	mx-pkix   IN A 127.0.0.1
	mx-none   IN A 127.0.0.1
	mx-bogus  IN A 127.0.0.1
	mx-plain  IN A 127.0.0.1
	mx-alias  IN CNAME mx-real
	mx-real   IN A 127.0.0.1
	mx-alias2 IN CNAME mx-real2
	mx-real2  IN A 127.0.0.1
	alias     IN MX 10 mx-alias
	alias2    IN MX 10 mx-alias2
	ta        IN MX 10 mx
	ee        IN MX 10 mx-ee
	taw       IN MX 10 mx-taw
	bad       IN MX 10 mx-bad
	pkix      IN MX 10 mx-pkix
	none      IN MX 10 mx-none
	only      IN MX 10 mx-none
	tamper    IN MX 10 mx-bogus
	plain     IN MX 10 mx-plain
	_$PF_GOOD._tcp.mx       IN TLSA 2 0 1 $ca
	_$PF_WRONG._tcp.mx-ee   IN TLSA 3 1 1 $wrong
	_$PF_WRONG._tcp.mx-taw  IN TLSA 2 0 1 $ca
	_$PF_SELF._tcp.mx-bad   IN TLSA 3 1 1 $good
	_$PF_SELF._tcp.mx-pkix  IN TLSA 1 1 1 $self
	_$PF_SELF._tcp.mx-pkix  IN TLSA 0 0 1 $ca
	_$PF_SELF._tcp.mx-bogus IN TLSA 3 1 1 $self
	_$PF_PLAIN._tcp.mx-plain IN TLSA 3 1 1 $self
	_$PF_GOOD._tcp.mx-real  IN TLSA 3 1 1 $good
	_$PF_GOOD._tcp.mx-alias2 IN TLSA 3 1 1 $good
	EOF
	dane_zone insecure.test unsigned <<-EOF
	@   IN MX 10 mx
	mx  IN A 127.0.0.1
	_$PF_SELF._tcp.mx IN TLSA 3 1 1 $(printf '%064d' 0)
	EOF
	dane_zone bogus.test bogus <<-EOF
	@   IN MX 10 mx
	mx  IN A 127.0.0.1
	EOF
	dane_dns_start
	printf 'only.tls.test dane-only\n' > "$T/conf/tls_policy"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/tls_policy"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_conf smtp_tls_security_level dane
	suite_conf smtp_dns_support_level dnssec
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf deliver_processes 1
	suite_start

	# DANE-TA(2): the CA's certificate, the MX name in the server's.
	pf_job "ta.tls.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD: TLSv1.3 with cipher .* \(DANE\)$"
	wait_for_log "$(last_qid): DANE TLSA 2 0 1 $ca matched the certificate at depth 1 of mx.tls.test"
	# DANE-EE(3): the key alone; the certificate names wrong.example.
	pf_job "ee.tls.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx-ee.tls.test\[127.0.0.1\]:$PF_WRONG: .* \(DANE\)$"
	wait_for_log "$(last_qid): DANE TLSA 3 1 1 $wrong matched the certificate at depth 0"
	# An MX host that is an alias (RFC 7672 2.2.2): the TLSA records at
	# its CNAME target count first, then those at the name itself.
	pf_job "alias.tls.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): TLSA records of mx-alias.tls.test:$PF_GOOD found at its alias target mx-real.tls.test"
	wait_for_log "$(last_qid): Verified TLS connection established to mx-alias.tls.test\[127.0.0.1\]:$PF_GOOD: .* \(DANE\)$"
	pf_job "alias2.tls.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx-alias2.tls.test\[127.0.0.1\]:$PF_GOOD: .* \(DANE\)$"
	wait_for_log "$(last_qid): DANE TLSA 3 1 1 $good matched the certificate at depth 0"
	# DANE-TA(2) checks names: a good chain for another name is refused.
	pf_job "taw.tls.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx-taw.tls.test[127.0.0.1]:$PF_WRONG could not be verified (level dane): no TLSA record of mx-taw.tls.test matches"* ]]
	# A TLSA record the certificate does not match defers; no plain text.
	pf_job "bad.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx-bad.tls.test[127.0.0.1]:$PF_SELF could not be verified (level dane)"* ]]
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx-bad.tls.test"
	! grep -q "$(last_qid): .*trying again without TLS" "$T/log"
	# TLSA records with STARTTLS stripped: deferred, never plain text.
	pf_job "plain.tls.test:$PF_PLAIN"
	[[ "$output" == *"rcpt=0 D 4.7.4 TLS is required, but was not offered by host mx-plain.tls.test[127.0.0.1]:$PF_PLAIN"* ]]
	# Only PKIX usages (RFC 7672 3.1.3): unusable, TLS without checks.
	pf_job "pkix.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): TLSA records of mx-pkix.tls.test:$PF_SELF are all unusable"
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx-pkix.tls.test"
	# A signed zone without TLSA records: dane is may ...
	pf_job "none.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx-none.tls.test\[127.0.0.1\]:$PF_SELF: TLSv1.3 with cipher .*bits\)$"
	# ... and dane-only defers.
	pf_job "only.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but no DNSSEC-validated TLSA records were found for host mx-none.tls.test[127.0.0.1]:$PF_SELF (mx-none.tls.test publishes no TLSA records)"* ]]
	# A bogus TLSA answer (SERVFAIL from unbound) defers the host.
	pf_job "tamper.tls.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLSA lookup error for mx-bogus.tls.test:$PF_SELF"* ]]
	# An unsigned zone: its TLSA record (which matches nothing) is not
	# believed, and TLS is opportunistic.
	pf_job "insecure.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx.insecure.test"
	# A bogus zone: the MX lookup fails, the mail waits.
	pf_job "bogus.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.4.3 "* ]]
	grep -q "validation failure <mx.bogus.test\|validation failure <bogus.test" "$T/dns/unbound.out"

	# Postfix got exactly the seven messages that were to be delivered.
	wait_until '[ "$(grep -c "discard.*status=sent" "$P/maillog")" -ge 7 ]' 10
	[ "$(grep -c 'status=sent' "$P/maillog")" -eq 7 ]
}

@test "DANE: smtp_dns_support_level and smtp_dnssec_trusted_resolvers are checked" {
	suite_conf smtp_dns_support_level dnssec-please
	run "$BUILD/postern" -c "$T/conf" check
	[ "$status" -ne 0 ]
	[[ "$output" == *"smtp_dns_support_level: \"dnssec-please\" is not enabled or dnssec"* ]]
	suite_conf smtp_dns_support_level dnssec
	suite_conf smtp_dnssec_trusted_resolvers "127.0.0.1/33"
	run "$BUILD/postern" -c "$T/conf" check
	[ "$status" -ne 0 ]
	[[ "$output" == *"smtp_dnssec_trusted_resolvers: \"127.0.0.1/33\" is not a network"* ]]
}
