#!/usr/bin/env bats
# Outbound TLS security levels (issue 16): smtp_tls_security_level and
# smtp_tls_policy_maps against a real Postfix with certificates from a
# test CA (one right, one for another name, one self-signed, one listener
# without STARTTLS), MX records from dnsmasq. One suite start, every
# level checked through deliver's own socket (tests/helpers/deliver-job).

load helpers/suite
load helpers/peers
load helpers/tls_peers

# KiB of libssl's code resident in the one deliver process.
deliver_libssl_code_kb() {
	local pid
	pid=$(ps -o pid= -o comm= --ppid "$(master_pid)" | awk '$2 == "deliver" { print $1 }')
	[ -n "$pid" ] || return 1
	awk '/^[0-9a-f]+-[0-9a-f]+ / { code = ($2 ~ /x/ && $6 ~ /libssl/) }
		code && /^Rss:/ { kb += $2 } END { print kb + 0 }' /proc/"$pid"/smaps
}

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

@test "TLS levels: may, encrypt, verify, secure, fingerprint, none, dane, per destination" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	tls_test_pki
	tls_postfix_start
	local m=--mx-host
	start_dnsmasq --host-record=mx.tls.test,127.0.0.1 \
		$m=may.test,mx.tls.test,10 $m=enc.test,mx.tls.test,10 \
		$m=ver.test,mx.tls.test,10 $m=sec.test,mx.tls.test,10 \
		$m=tls.test,mx.tls.test,10 $m=secm.test,mx.tls.test,10 \
		$m=fp.test,mx.tls.test,10 $m=fpbad.test,mx.tls.test,10 \
		$m=none.test,mx.tls.test,10 $m=proto.test,mx.tls.test,10 \
		$m=dane.test,mx.tls.test,10 $m=daneonly.test,mx.tls.test,10
	cat > "$T/conf/tls_policy" <<-EOF2
	enc.test        encrypt
	ver.test        verify
	.sec.test       secure
	sec.test        secure
	tls.test        secure
	secm.test       secure match=mx.tls.test:nosuch.example
	fp.test         fingerprint match=SHA256:$(tls_fingerprint "$T/pki/self.pem")
	fpbad.test      fingerprint match=$(printf '%064d' 0)
	none.test       none
	proto.test      encrypt protocols=TLSv1.2 ciphers=high
	dane.test       dane
	daneonly.test   dane-only
	[mx.tls.test]   secure
	EOF2
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/tls_policy"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	# One deliver process: its TLS session cache sees every job.
	suite_conf deliver_processes 1
	suite_start

	# deliver makes its TLS context at its first STARTTLS (issue 20,
	# deliver_tls.c): after plain SMTP alone it has run none of
	# libssl's code; the context made then, under deliver's
	# confinement, has loaded smtp_tls_CAfile (Trusted below).
	pf_job "may.test:$PF_PLAIN"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[ "$(deliver_libssl_code_kb)" -eq 0 ]

	# may (the default): any certificate, logged for what it is.
	pf_job "may.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Trusted TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD: TLSv1.3 with cipher "
	[ "$(deliver_libssl_code_kb)" -gt 0 ]
	pf_job "may.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_SELF: "
	pf_job "may.test:$PF_PLAIN"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]

	# encrypt: TLS or nothing, whatever the certificate.
	pf_job "enc.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Untrusted TLS connection established to mx.tls.test"
	pf_job "enc.test:$PF_PLAIN"
	[[ "$output" == *"rcpt=0 D 4.7.4 TLS is required, but was not offered by host mx.tls.test[127.0.0.1]:$PF_PLAIN"* ]]

	# verify: the CA chain and the MX name from DNS.
	pf_job "ver.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD: TLSv1.3 with cipher "
	pf_job "ver.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_WRONG could not be verified (level verify): the certificate names none of mx.tls.test"* ]]
	wait_for_log "$(last_qid): Trusted TLS connection established to mx.tls.test"
	pf_job "ver.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_SELF could not be verified (level verify): untrusted issuer or chain: self-signed certificate"* ]]
	pf_job "ver.test:$PF_PLAIN"
	[[ "$output" == *"rcpt=0 D 4.7.4 TLS is required, but was not offered"* ]]

	# secure: the nexthop domain, not the MX name DNS gave (unsigned).
	pf_job "sec.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_GOOD could not be verified (level secure): the certificate names none of sec.test .sec.test"* ]]
	pf_job "tls.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx.tls.test"
	# The same server at the same level: the session is resumed, and the
	# certificate (kept in the session) judged again for the new names.
	pf_job "secm.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection reused to mx.tls.test\[127.0.0.1\]:$PF_GOOD: TLSv1.3 with cipher "
	# Resumed again, though Postfix sent no new ticket after the
	# resumption above: the cached session serves until a newer one.
	pf_job "[mx.tls.test]:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection reused to mx.tls.test"
	pf_job "[mx.tls.test]:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_SELF could not be verified (level secure): untrusted issuer"* ]]

	# fingerprint: the pinned certificate, self-signed or not.
	pf_job "fp.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_SELF"
	pf_job "fpbad.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_SELF could not be verified (level fingerprint): certificate fingerprint "*" matches no match= fingerprint"* ]]

	# protocols= and ciphers= of an entry.
	pf_job "proto.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): Trusted TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD: TLSv1.2 with cipher ECDHE-ECDSA-"

	# none: no STARTTLS at all, though offered.
	pf_job "none.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	! grep -q "$(last_qid): .*TLS connection established" "$T/log"

	# dane without DNSSEC is may; dane-only defers (RFC 7672 2.2).
	pf_job "dane.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	pf_job "daneonly.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but no DNSSEC-validated TLSA records were found for host mx.tls.test[127.0.0.1]:$PF_GOOD"* ]]

	# Postfix got exactly the mail that was sent: 13 messages.
	wait_until '[ "$(grep -c "discard.*status=sent" "$P/maillog")" -ge 13 ]' 10
	[ "$(grep -c 'status=sent' "$P/maillog")" -eq 13 ]
}

@test "TLS levels: a bad level or policy entry is refused with its reason" {
	suite_conf smtp_tls_security_level verfy
	run "$BUILD/postern" -c "$T/conf" check
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *'smtp_tls_security_level: "verfy" is not a TLS security level'* ]]
	suite_conf smtp_tls_security_level verify
	suite_conf smtp_sasl_tls_security_level maybe
	run "$BUILD/postern" -c "$T/conf" check
	[ "$status" -ne 0 ]
	[[ "$output" == *'smtp_sasl_tls_security_level: "maybe" is not'* ]]
	suite_conf smtp_sasl_tls_security_level secure

	# A broken entry defers its destination's mail, with the reason.
	printf '[127.0.0.1]:%s secure mach=x\n' 9 > "$T/conf/tls_policy"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/tls_policy"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:9" --from a@example.org --to b@example.net
	echo "$output"
	[[ "$output" == *'rcpt=0 D 4.3.5 smtp_tls_policy_maps: bad entry for [127.0.0.1]:9: unknown attribute "mach" (use match, protocols or ciphers)'* ]]
}
