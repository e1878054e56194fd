#!/usr/bin/env bats
# deliver's TLS session cache (deliver/deliver_tls.c) against a real
# Postfix smtpd (TLS 1.3; it sends a ticket after a full handshake and
# none after a resumption): every connection to one server after the
# first is resumed, and a session is offered only where the server's
# name and the level match. One deliver process, so that its cache sees
# every job; the jobs alternate between next hops, since a job for the
# next hop of the connection deliver keeps open would make no handshake.

load helpers/suite
load helpers/peers
load helpers/tls_peers

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

# cache_job NEXTHOP WHAT: one job; deliver's "... TLS connection
# established|reused to ..." line for it must contain WHAT. The job's
# result stays in $output.
cache_job() {
	pf_job "$1"
	local qid line
	qid=$(last_qid)
	wait_for_log "$qid: .* TLS connection (established|reused) to " || return 1
	line=$(grep -E "$qid: .* TLS connection (established|reused) to " "$T/log")
	echo "$1: $line"
	[[ "$line" == *"$2"* ]]
}

cache_start() {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	tls_test_pki
	tls_postfix_start
	local m=--mx-host
	start_dnsmasq --host-record=mx.tls.test,127.0.0.1 \
		--host-record=relay.tls.test,127.0.0.1 \
		$m=a.test,mx.tls.test,10 $m=b.test,mx.tls.test,10 \
		$m=c.test,mx.tls.test,10 $m=enc1.test,mx.tls.test,10 \
		$m=enc2.test,mx.tls.test,10 $m=fp.test,mx.tls.test,10 \
		$m=fpbad.test,mx.tls.test,10 $m=rel1.test,relay.tls.test,10 \
		$m=rel2.test,relay.tls.test,10
	cat > "$T/conf/tls_policy" <<-EOF2
	a.test          verify
	b.test          verify
	c.test          verify
	enc1.test       encrypt
	enc2.test       encrypt
	fp.test         fingerprint match=SHA256:$(tls_fingerprint "$T/pki/good.pem")
	fpbad.test      fingerprint match=$(printf '%064d' 0)
	rel1.test       verify
	rel2.test       verify
	EOF2
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/tls_policy"
	suite_conf smtp_tls_policy_maps "hash:$T/conf/tls_policy"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf deliver_processes 1
	suite_start
}

@test "TLS session cache: every connection to one server after the first is resumed" {
	cache_start
	local at="to mx.tls.test[127.0.0.1]:$PF_GOOD: TLSv1.3 "
	cache_job "a.test:$PF_GOOD" "Verified TLS connection established $at"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	local dest
	for dest in b.test c.test a.test b.test c.test; do
		cache_job "$dest:$PF_GOOD" "Verified TLS connection reused $at"
		[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	done
}

@test "TLS session cache: no session crosses a level or a server name" {
	cache_start
	local mx="mx.tls.test[127.0.0.1]:$PF_GOOD"
	# A session at verify...
	cache_job "a.test:$PF_GOOD" "Verified TLS connection established to $mx"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]

	# ...is not offered at encrypt (the same server), which gets its own.
	cache_job "enc1.test:$PF_GOOD" "TLS connection established to $mx"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cache_job "enc2.test:$PF_GOOD" "TLS connection reused to $mx"

	# Nor at fingerprint. Within the level a session serves another
	# destination's pins, and they are checked again on resumption:
	# the wrong pin fails on the resumed session.
	cache_job "fp.test:$PF_GOOD" "Verified TLS connection established to $mx"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cache_job "fpbad.test:$PF_GOOD" "TLS connection reused to $mx"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host $mx could not be verified (level fingerprint): certificate fingerprint "*" matches no match= fingerprint"* ]]

	# Another name (the SNI) for the same address and port: a server may
	# choose its certificate by it, so that name gets a session of its own.
	local relay="relay.tls.test[127.0.0.1]:$PF_GOOD"
	cache_job "rel1.test:$PF_GOOD" "Verified TLS connection established to $relay"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cache_job "rel2.test:$PF_GOOD" "Verified TLS connection reused to $relay"

	# And the first name's session still serves its own.
	cache_job "b.test:$PF_GOOD" "Verified TLS connection reused to $mx"
}
