#!/usr/bin/env bats
# TLS-RPT (RFC 8460, issue 16): deliver records each TLS session of a
# domain with an MTA-STS policy (served by python3's https server, DNS
# from dnsmasq, a private Postfix with a right and a wrong certificate as
# the MX), and `postern tls report` makes the daily report. One suite
# start proves:
#   - `postern tls report --dry-run` prints a JSON report with every field
#     of RFC 8460 section 4 and the right counts (python's json);
#   - `postern tls report` sends it through postern itself to the rua
#     mailto: of the `_smtp._tls` record: the mail arrives in the
#     mailbox as a multipart/report (report-type tlsrpt, subject and
#     header fields of section 5.3) whose gzip part holds that report;
#   - the day's store is marked sent, so a second run sends nothing, and
#     days over a week old are removed.

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

@test "TLS-RPT: sessions recorded, the daily report printed and sent to the rua mailbox" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start and port 443 need root"
	tls_test_pki
	mtasts_cert mta-sts.rpt.test
	mtasts_policy rpt.test $'version: STSv1\nmode: enforce\nmx: mx.tls.test\nmax_age: 86400\n'
	mtasts_https_start
	tls_postfix_start
	mtasts_dns --host-record=mx.tls.test,127.0.0.1 \
		--host-record=mta-sts.rpt.test,$MTASTS_ADDR \
		--mx-host=rpt.test,mx.tls.test,10 \
		"--txt-record=_mta-sts.rpt.test,v=STSv1; id=r1" \
		"--txt-record=_smtp._tls.rpt.test,v=TLSRPTv1; rua=mailto:tlsrpt@postern.test"
	printf 'tlsrpt@postern.test\tpostern.test/tlsrpt/\n' > "$T/conf/mailboxes"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf smtp_tls_CAfile "$T/pki/ca.pem"
	suite_conf smtp_tls_CApath ""
	suite_conf tls_rpt_organization "postern test"
	suite_start

	# Two verified sessions, one with a certificate for another name.
	local nexthop out
	for nexthop in "rpt.test:$PF_GOOD" "rpt.test:$PF_GOOD" "rpt.test:$PF_WRONG"; do
		out=$(deliver_job --nexthop "$nexthop" --from a@example.org --to ok@pf.test)
		echo "$out"
	done
	[[ "$out" == *"rcpt=0 D 4.7.5 "* ]]

	run "$BUILD/postern" -c "$T/conf" tls report --dry-run --day today
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"# report for rpt.test to tlsrpt@postern.test"* ]]
	[[ "$output" == *"# Subject: Report Domain: rpt.test Submitter: mx.postern.test Report-ID: <"* ]]
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/tlsrpt_check.py" json \
		rpt.test 2 1 certificate-host-mismatch <<<"$output"
	# A dry run sends nothing and keeps the store.
	ls "$T/queue/tls/tlsrpt/" | grep -qv sent

	# A day over a week old goes when reports are sent.
	printf '1\tsts\told.test\tsuccess\t-\t-\t-\t-\n' > "$T/queue/tls/tlsrpt/2020-01-01.sent"
	run "$BUILD/postern" -c "$T/conf" tls report --day today
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rpt.test: report "*" queued"* ]]
	[ ! -e "$T/queue/tls/tlsrpt/2020-01-01.sent" ]
	wait_for_count "ls '$T/mail/postern.test/tlsrpt/new' 2>/dev/null | wc -l" 1 30
	local mail
	mail=$(ls "$T/mail/postern.test/tlsrpt/new/"*)
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/tlsrpt_check.py" mail \
		rpt.test 2 1 certificate-host-mismatch "$mail"
	grep -q '^From: postmaster@mx.postern.test' "$mail"

	# Sent once: the store is marked, a second run finds nothing.
	ls "$T/queue/tls/tlsrpt/"*.sent
	run "$BUILD/postern" -c "$T/conf" tls report --day today
	[[ "$output" == *"no TLS-RPT records"* ]]
}
