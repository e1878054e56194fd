#!/usr/bin/env bats
# Internationalized domains (IDNA 2008, issue 19) through the real suite,
# with a dnsmasq zone that holds the IDN in its A-label spelling (as any
# DNS does) and Postfix's smtp-sink as its MX, which offers no SMTPUTF8.
# One suite start proves
#   - a U-label domain (and a U-label next hop in transport_maps) is
#     looked up in DNS as A-labels, and a peer
#     without SMTPUTF8 gets the envelope domain as A-labels (RFC 6531
#     3.2): no bounce when only the domain is UTF-8;
#   - a UTF-8 local part still needs SMTPUTF8: that one bounces (5.6.7);
#   - the U-label spelling of a local domain written as "xn--" in
#     mydomains is local: smtpd knows its users (550 for others), and the
#     mail lands in the Maildir that mailbox_maps names under the A-label.

load helpers/suite
load helpers/peers

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

@test "U-label domains: A-labels for DNS and for a peer without SMTPUTF8; one local domain in both spellings" {
	PORT=$(free_port)
	# bücher.test and münchen.test, as A-labels.
	start_dnsmasq --mx-host=xn--bcher-kva.test,mx.xn--bcher-kva.test,10 \
		--host-record=mx.xn--bcher-kva.test,127.0.0.1
	start_sink sink 127.0.0.1:$PORT
	# The key as A-labels (qmgr looks up that spelling), the next hop
	# in UTF-8 (deliver looks it up as A-labels).
	printf 'xn--bcher-kva.test\tsmtp:bücher.test:%s\n' "$PORT" \
		> "$T/conf/transport"
	printf 'anna@xn--mnchen-3ya.test\tmuenchen/anna/\n' > "$T/conf/mailboxes"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/transport" "$T/conf/mailboxes"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf mydomains "localhost, postern.test, xn--mnchen-3ya.test"
	suite_start

	run /usr/bin/python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('client.example')
if not s.has_extn('smtputf8'):
    print('smtpd does not offer SMTPUTF8'); sys.exit(2)
def send(rcpt, subject):
    msg = ('Subject: %s\r\n\r\nhallo\r\n' % subject).encode('utf-8')
    return s.sendmail('s@postern.test', [rcpt], msg,
                      mail_options=['SMTPUTF8'])
send('kurt@bücher.test', 'to the IDN')
send('jörg@bücher.test', 'UTF-8 local part')
send('anna@münchen.test', 'local, U-label')
# Not a user of the local domain, whichever spelling: refused at RCPT.
s.mail('s@postern.test', ['SMTPUTF8'])
code, text = s.rcpt('nobody@münchen.test')
print('unknown local user:', code, text.decode())
if code != 550:
    sys.exit(3)
s.rset()
s.quit()
PY
	echo "$output"
	[ "$status" -eq 0 ]

	# The MX of the A-label domain, reached; the envelope in A-labels.
	wait_for_log "to=<kurt@bücher.test>, relay=mx.xn--bcher-kva.test\[127.0.0.1\]:$PORT, .*status=sent" 20
	grep -q 'smtp-sink: RCPT TO:<kurt@xn--bcher-kva.test>' "$T/sink.out"
	! grep -q 'SMTPUTF8' "$T/sink.out"
	# UTF-8 in the local part cannot be written in ASCII.
	wait_for_log "to=<jörg@bücher.test>, .*dsn=5.6.7, status=bounced" 20
	# Local, in the Maildir keyed by the A-label spelling.
	wait_for_count "find '$T/mail/muenchen/anna/new' -type f 2>/dev/null | wc -l" 1
	grep -q '^Subject: local, U-label' "$(find "$T/mail/muenchen/anna/new" -type f)"
	grep -Eq "to=<anna@münchen.test>, relay=localhost\[.*\], .*status=sent" "$T/log"
}
