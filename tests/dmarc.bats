#!/usr/bin/env bats
# DMARC and SPF enforcement in smtpd (issue 15, RFC 7489, RFC 7208,
# RFC 7372) on a postern MX with dmarc_enforce = reject and smtpd_spf =
# enforce, talked to by python3 smtplib from 127.0.0.1 (a stranger) and
# [::1] (mynetworks). A forged From of a p=reject domain is refused at
# the end of data with 550 5.7.1 naming the policy, and nothing is
# queued; p=quarantine, the org domain's sp= for a subdomain without a
# record, and pct=0 (the next milder policy, 6.6.4) go to hold/; an SPF
# fail is refused at MAIL (550 5.7.23); an SPF pass aligned with From
# passes DMARC; the null sender is checked by its HELO name; a client in
# mynetworks is not checked at all. A milter (tests/helpers/
# milter_script.py, on python3-milter) sits on the MX, so that the
# filters' path is the one taken: it sees our Received and
# Authentication-Results fields first. Records are served by dnsmasq on
# loopback. One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/peers
load helpers/authres

setup_file() {
	file_timer_start
	suite_init
	authres_mx_conf
	local args=()
	mapfile -t args < <(authres_zone_args)
	start_dnsmasq "${args[@]}"
	MILTER_PORT=$(free_port)
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/milter_script.py" "$MILTER_PORT" \
		"$T/milter.log" >"$T/milter.out" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for_port "$MILTER_PORT" 20
	suite_conf smtpd_milters "inet:127.0.0.1:$MILTER_PORT"
	suite_conf smtpd_spf enforce
	suite_conf dmarc_enforce reject
	suite_start
}

teardown_file() {
	peers_stop
	suite_stop
	file_timer_report
}

# try SERVER HELO MAILFROM FROMHEADER: one message to bob@postern.test;
# prints "mail CODE", then "data CODE TEXT" when MAIL was accepted.
try() {
	/usr/bin/python3 - "$SMTP_PORT" "$@" <<'PY'
import smtplib, sys
port, server, helo, mailfrom, hfrom = sys.argv[1:6]
s = smtplib.SMTP(server, int(port), local_hostname=helo, timeout=20)
s.ehlo(helo)
code, text = s.mail(mailfrom)
print("mail", code, text.decode())
if code == 250:
    s.rcpt("bob@postern.test")
    msg = ("From: %s\r\nTo: bob@postern.test\r\nSubject: dmarc test\r\n"
           "Message-ID: <%s.%s@test>\r\n\r\nbody\r\n" % (hfrom, hfrom, mailfrom))
    try:
        code, text = s.data(msg.encode())
    except smtplib.SMTPDataError as e:
        code, text = e.smtp_code, e.smtp_error
    print("data", code, text.decode())
s.quit()
PY
}

@test "p=reject: a forged From is refused at the end of data with 550 5.7.1 naming the policy; nothing is queued" {
	run try 127.0.0.1 client.test someone@nospf.test ceo@reject.test
	echo "$output"
	[[ "$output" == *"mail 250"* ]]
	[[ "$output" == *"data 550 5.7.1 Error: message rejected by the DMARC policy of reject.test (p=reject)"* ]]
	grep -q 'NOQUEUE: reject: END-OF-MESSAGE from unknown\[127.0.0.1\]: 550 5.7.1 Error: message rejected by the DMARC policy of reject.test' "$T/log"
	grep -q ': spf=none (mailfrom nospf.test), spf_helo=none (client.test), dkim=none, dmarc=fail (reject.test p=reject dis=reject)' "$T/log"
	# The same in two BDAT chunks (RFC 3030): the last one gets the 550.
	local head='From: ceo@reject.test\r\nSubject: chunked\r\n\r\n' body='body\r\n'
	run raw --step 'EHLO client.test\r\n' 'MAIL FROM:<a@nospf.test>\r\n' \
		'RCPT TO:<bob@postern.test>\r\n' "BDAT 43\\r\\n$head" "BDAT 6 LAST\\r\\n$body" 'QUIT\r\n'
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: 43 octets received"* ]]
	[[ "$output" == *"550 5.7.1 Error: message rejected by the DMARC policy of reject.test"* ]]
	[ "$(queue_count)" -eq 0 ]
}

@test "p=quarantine, the org domain's sp= and pct=0 go to hold/ with dmarc=fail in Authentication-Results" {
	run try 127.0.0.1 client.test a@nospf.test news@quar.test
	echo "$output"
	[[ "$output" == *"data 250 2.0.0 Ok: queued as"* ]]
	run try 127.0.0.1 client.test a@nospf.test boss@sub.reject.test
	echo "$output"
	[[ "$output" == *"data 250 2.0.0 Ok: queued as"* ]]
	run try 127.0.0.1 client.test a@nospf.test ceo@pct0.test
	echo "$output"
	[[ "$output" == *"data 250 2.0.0 Ok: queued as"* ]]
	[ "$(queue_count hold)" -eq 3 ]
	grep -q 'hold: END-OF-MESSAGE from unknown\[127.0.0.1\]: DMARC policy of quar.test is quarantine' "$T/log"
	grep -q 'hold: END-OF-MESSAGE from unknown\[127.0.0.1\]: DMARC policy of sub.reject.test is quarantine' "$T/log"
	grep -q 'hold: END-OF-MESSAGE from unknown\[127.0.0.1\]: DMARC policy of pct0.test is reject' "$T/log"
	grep -lq 'dmarc=fail (p=quarantine sp=quarantine pct=100 dis=quarantine) header.from=quar.test policy.dmarc=quarantine' "$T"/queue/hold/*
	grep -lq 'dmarc=fail (p=reject sp=quarantine pct=100 dis=quarantine) header.from=sub.reject.test' "$T"/queue/hold/*
	grep -lq 'dmarc=fail (p=reject sp=reject pct=0 dis=quarantine) header.from=pct0.test' "$T"/queue/hold/*
	# The filter saw our two fields first.
	grep -q '^eoh headers=Received,Authentication-Results,From,To,Subject' "$T/milter.log"
}

@test "smtpd_spf = enforce: a fail is refused at MAIL (550 5.7.23); aligned SPF passes DMARC; the null sender is checked by HELO" {
	run try 127.0.0.1 client.test x@spffail.test x@spffail.test
	echo "$output"
	[[ "$output" == *"mail 550 5.7.23 SPF: spffail.test does not designate 127.0.0.1 as a permitted sender"* ]]
	[[ "$output" != *"data"* ]]
	grep -q 'NOQUEUE: reject: MAIL from unknown\[127.0.0.1\]: 550 5.7.23' "$T/log"
	rm -f "$T"/mail/postern.test/bob/new/*
	run try 127.0.0.1 client.test ceo@reject.test ceo@reject.test
	echo "$output"
	[[ "$output" == *"data 250 "* ]]
	local msg
	msg=$(mx_message bob)
	cat "$msg"
	sed -n '/^Authentication-Results:/,/^[^\t]/p' "$msg" > "$T/ar"
	grep -qE $'^\tspf=pass .* smtp.mailfrom=ceo@reject.test;' "$T/ar"
	grep -qE $'^\tdmarc=pass \\(p=reject sp=quarantine pct=100 dis=none\\) header.from=reject.test' "$T/ar"
	rm -f "$T"/mail/postern.test/bob/new/*
	run try 127.0.0.1 spfhelo.test "" mailer-daemon@spfhelo.test
	echo "$output"
	[[ "$output" == *"data 250 "* ]]
	msg=$(mx_message bob)
	grep -qE $'^\tspf=pass .* smtp.helo=spfhelo.test;' "$msg"
}

@test "a client in mynetworks is not checked: no Authentication-Results, a p=reject From accepted" {
	rm -f "$T"/mail/postern.test/bob/new/*
	run try ::1 client.test x@spffail.test ceo@reject.test
	echo "$output"
	[[ "$output" == *"mail 250"* ]]
	[[ "$output" == *"data 250 "* ]]
	local msg
	msg=$(mx_message bob)
	[ "$(grep -c '^Authentication-Results:' "$msg")" -eq 0 ]
}
