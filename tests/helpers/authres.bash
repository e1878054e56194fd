# authres.bash - helpers for the inbound authentication tests
# (tests/authres.bats, tests/dmarc.bats; load after suite, peers, dkim).
#
# authres_mx_conf          the current instance as the MX of postern.test:
#                          bob@postern.test in a Maildir, 127.0.0.1 a
#                          stranger (checked), [::1] mynetworks (not)
# authres_zone_args        dnsmasq arguments for the SPF and DMARC records
#                          the tests share, one a line
# mx_message USER          the newest message in USER's Maildir (waits)

authres_mx_conf() {
	printf 'bob@postern.test\tpostern.test/bob/\n' > "$T/conf/mailboxes"
	"$POSTERN" -c "$T/conf" map build "$T/conf/mailboxes"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf mynetworks "[::1]/128"
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT, [::1]:$SMTP_PORT"
	suite_conf smtpd_peername_lookup no
}

authres_zone_args() {
	cat <<-'EOF'
	--txt-record=sign.test,v=spf1 ip4:127.0.0.1 -all
	--txt-record=_dmarc.sign.test,v=DMARC1; p=reject
	--txt-record=reject.test,v=spf1 ip4:127.0.0.1 -all
	--txt-record=_dmarc.reject.test,v=DMARC1; p=reject; sp=quarantine
	--txt-record=_dmarc.quar.test,v=DMARC1; p=quarantine; rua=mailto:d@quar.test
	--txt-record=_dmarc.pct0.test,v=DMARC1; p=reject; pct=0
	--txt-record=spffail.test,v=spf1 ip4:192.0.2.1 -all
	--txt-record=spfhelo.test,v=spf1 ip4:127.0.0.1 -all
	EOF
}

mx_message() {
	local dir=$T/mail/postern.test/$1/new
	wait_until "[ -n \"\$(ls -A '$dir' 2>/dev/null)\" ]" 20 || return 1
	ls -t "$dir"/* | head -1
}
