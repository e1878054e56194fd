#!/usr/bin/env bats
# MTA-STS (RFC 8461, issue 16) in deliver, against real peers: policies
# served over HTTPS by python3's http.server with a certificate of a test
# CA on 127.0.1.N:443 (tests/helpers/mtasts_https.py), TXT, MX and A
# records from dnsmasq, and a private Postfix with one listener per
# certificate (tls_peers.bash) as every MX host. Jobs go through deliver's
# own socket (tests/helpers/deliver-job), one suite start. Proves:
#   - enforce with a matching MX: delivered over a verified channel;
#   - enforce with a certificate for another name, or self-signed: deferred
#     (the same server is fine for a domain without a policy);
#   - testing: delivered, and the failure it would be is logged;
#   - an MX host the policy does not name is skipped (none left: deferred);
#   - a redirect and a policy over 64 KiB are refused (no policy applies);
#   - the cached policy holds while the HTTPS server is gone;
#   - a new id in the TXT record makes deliver fetch the policy again.

load helpers/suite
load helpers/peers
load helpers/tls_peers
load helpers/mtasts

setup() {
	peers_setup
	suite_conf smtp_mta_sts_timeout 2s
}

teardown() {
	peers_teardown
}

ENFORCE=$'version: STSv1\r\nmode: enforce\r\nmx: mx.tls.test\r\nmax_age: 86400\r\n'
TESTING=$'version: STSv1\nmode: testing\nmx: *.tls.test\nmax_age: 86400\n'

# The DNS of every domain; $1 is good.test's policy id.
records() {
	local d m=--mx-host out=()
	out+=(--host-record=mx.tls.test,127.0.0.1 --host-record=other.tls.test,127.0.0.1)
	for d in good bad testing skip nomx redir big plain; do
		out+=(--host-record=mta-sts.$d.test,$MTASTS_ADDR)
	done
	for d in good bad testing redir big plain; do
		out+=($m=$d.test,mx.tls.test,10)
	done
	out+=($m=skip.test,other.tls.test,10 $m=skip.test,mx.tls.test,20)
	out+=($m=nomx.test,other.tls.test,10)
	out+=("--txt-record=_mta-sts.good.test,v=STSv1; id=$1")
	for d in bad testing skip nomx redir big; do
		out+=("--txt-record=_mta-sts.$d.test,v=STSv1; id=${d}1")
	done
	mtasts_dns "${out[@]}"
}

@test "MTA-STS: enforce, testing, MX patterns, refused fetches, cache, id change" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start and port 443 need root"
	tls_test_pki
	mtasts_cert mta-sts.good.test mta-sts.bad.test mta-sts.testing.test \
		mta-sts.skip.test mta-sts.nomx.test mta-sts.redir.test \
		mta-sts.big.test
	for d in good bad skip nomx; do mtasts_policy $d.test "$ENFORCE"; done
	mtasts_policy testing.test "$TESTING"
	mtasts_policy redir.test "$ENFORCE"
	touch "$T/www/mta-sts.redir.test/redirect"
	mtasts_policy big.test "$ENFORCE$(head -c 70000 /dev/zero | tr '\0' '#')"
	mtasts_https_start
	tls_postfix_start
	records g1
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf deliver_processes 1
	suite_start

	# enforce, the certificate names the MX: verified and sent.
	pf_job "good.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): MTA-STS policy of good.test: mode enforce, id g1, fetched"
	wait_for_log "$(last_qid): Verified TLS connection established to mx.tls.test\[127.0.0.1\]:$PF_GOOD"
	[ -f "$T/queue/tls/mta-sts/good.test" ]
	# The fetch's lock file goes with the fetch that worked.
	[ ! -e "$T/queue/tls/mta-sts/+good.test" ]

	# enforce, a certificate for another name or self-signed: deferred.
	pf_job "bad.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_WRONG could not be verified (level verify): the certificate names none of mx.tls.test"* ]]
	pf_job "bad.test:$PF_SELF"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate of host mx.tls.test[127.0.0.1]:$PF_SELF could not be verified (level verify): untrusted issuer"* ]]
	# The same server, a domain without a policy: the default, may.
	pf_job "plain.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	! grep -q "$(last_qid): MTA-STS" "$T/log"

	# testing: delivered, the failure only logged.
	pf_job "testing.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "$(last_qid): MTA-STS policy of testing.test \(mode testing\) would refuse mx.tls.test\[127.0.0.1\]:$PF_WRONG: certificate-host-mismatch"

	# An MX host the policy does not name is skipped; none left: deferred.
	pf_job "skip.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "$(last_qid): MX host other.tls.test is not in the MTA-STS policy of skip.test (mode enforce): skipped" "$T/log"
	grep -q "$(last_qid): to=<ok@pf.test>, relay=mx.tls.test\[127.0.0.1\]:$PF_GOOD, .*status=sent" "$T/log"
	pf_job "nomx.test:$PF_GOOD"
	[[ "$output" == *"rcpt=0 D 4.4.3 no MX host of nomx.test is in its MTA-STS policy (mode enforce)"* ]]

	# A redirect and an oversize policy are refused: no policy applies.
	pf_job "redir.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "$(last_qid): MTA-STS policy of redir.test cannot be had: https://mta-sts.redir.test/.well-known/mta-sts.txt: HTTP 301: redirects are refused" "$T/log"
	grep -q "GET mta-sts.redir.test /.well-known/mta-sts.txt 301" "$T/https.out"
	grep -q '^postern-mta-sts-failed 1 redir1 ' "$T/queue/tls/mta-sts/+redir.test"
	! grep -q "GET mta-sts.good.test .*" <(grep -v "^GET mta-sts.good.test /.well-known/mta-sts.txt 200" "$T/https.out")
	pf_job "big.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "$(last_qid): MTA-STS policy of big.test cannot be had: https://mta-sts.big.test/.well-known/mta-sts.txt: the policy is over 65536 octets" "$T/log"
	[ ! -e "$T/queue/tls/mta-sts/big.test" ]

	# The HTTPS server is gone: the cached policy still holds.
	mtasts_https_stop
	local fetches
	fetches=$(grep -c "GET mta-sts.good.test" "$T/https.out")
	[ "$fetches" -eq 1 ]
	pf_job "good.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 D 4.7.5 TLS is required, but the certificate"* ]]
	grep -q "$(last_qid): MTA-STS policy of good.test: mode enforce, id g1, from the cache" "$T/log"

	# A new id: fetched again (now testing), and the mail goes.
	mtasts_policy good.test "$TESTING"
	mtasts_https_start
	records g2
	pf_job "good.test:$PF_WRONG"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "$(last_qid): MTA-STS policy of good.test: mode testing, id g2, fetched" "$T/log"
	[ "$(grep -c "GET mta-sts.good.test" "$T/https.out")" -eq 2 ]
	head -n1 "$T/queue/tls/mta-sts/good.test" | grep -q "^postern-mta-sts 1 g2 "
	# Of the lock files only the failures' stay, holding their record:
	# none for the six policies fetched.
	[ "$(cd "$T/queue/tls/mta-sts" && ls -A | grep '^+' | sort | xargs)" = "+big.test +redir.test" ]
}
