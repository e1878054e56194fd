#!/usr/bin/env bats
# Two leftovers of issue 15 on a postern MX with smtpd_spf = enforce and
# a real milter (tests/helpers/milter_authres.py, python3-milter) in
# smtpd_milters:
# - Authentication-Results fields claiming our authserv-id that arrive
#   from a stranger are removed on the filters' path too (RFC 8601 5),
#   before the filter sees the message, while the field the filter adds
#   with our id on purpose (as OpenDMARC does) stays;
# - SPF of the HELO identity for every sender (RFC 7208 2.3): its own
#   "spf=R smtp.helo=NAME" result beside the MAIL FROM one, a
#   "spf_helo=" in the log, looked up once per HELO name in a session,
#   a HELO fail refused at MAIL (550 5.7.23), and no lookup at all for
#   an address literal or a name of one label.
# Records are served by dnsmasq on loopback, which logs each query.
# One suite start.

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
	mapfile -t args < <(authres_zone_args; cat <<-'EOF2'
	--txt-record=helo1.helo.test,v=spf1 ip4:127.0.0.1 -all
	--txt-record=helo2.helo.test,v=spf1 ip4:127.0.0.1 -all
	--txt-record=helo3.helo.test,v=spf1 ?all
	--txt-record=bad.helo.test,v=spf1 ip4:192.0.2.1 -all
	--log-queries
	EOF2
	)
	start_dnsmasq "${args[@]}"
	MILTER_PORT=$(free_port)
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/milter_authres.py" "$MILTER_PORT" \
		"$T/milter.log" mx.postern.test >"$T/milter.out" 2>&1 3>&- &
	PEER_PIDS+=($!)
	wait_for_port "$MILTER_PORT" 20
	suite_conf smtpd_milters "inet:127.0.0.1:$MILTER_PORT"
	suite_conf milter_command_timeout 2s
	suite_conf milter_content_timeout 2s
	suite_conf smtpd_spf enforce
	suite_start
}

teardown_file() {
	peers_stop
	suite_stop
	file_timer_report
}

# session HELO MAILFROM [HELO MAILFROM]...: one SMTP session from
# 127.0.0.1; each pair says EHLO when HELO differs from the last one,
# then sends one message to bob@postern.test. Prints "CODE TEXT" of each
# MAIL and of each DATA.
session() {
	/usr/bin/python3 - "$SMTP_PORT" "$@" <<'PY'
import smtplib, sys
port, pairs = int(sys.argv[1]), sys.argv[2:]
s = smtplib.SMTP("127.0.0.1", port, local_hostname="x", timeout=20)
last = None
for i in range(0, len(pairs), 2):
    helo, sender = pairs[i], pairs[i + 1]
    if helo != last:
        s.ehlo(helo)
        last = helo
    code, text = s.mail(sender)
    print("mail", code, text.decode())
    if code != 250:
        s.rset()
        continue
    s.rcpt("bob@postern.test")
    code, text = s.data(("From: %s\r\nTo: bob@postern.test\r\n"
                         "Subject: helo %s %d\r\n\r\nbody\r\n"
                         % (sender or "<>", helo, i)).encode())
    print("data", code, text.decode())
s.quit()
PY
}

# The delivered message whose Subject is "helo HELO N".
message_of() {
	wait_until "grep -l '^Subject: $1\$' '$T'/mail/postern.test/bob/new/* >/dev/null 2>&1" 20 || return 1
	grep -l "^Subject: $1\$" "$T"/mail/postern.test/bob/new/* | head -1
}

# The number of TXT queries dnsmasq got for NAME.
queries() {
	grep -c "query\[TXT\] $1 from" "$T/dnsmasq.out" || true
}

@test "milter path: forged Authentication-Results with our id removed before the filter sees them; the filter's own field with our id kept" {
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --silent 2 \
		--helo helo1.helo.test --from someone@sign.test --to bob@postern.test \
		--header 'From: someone@sign.test' --header 'Subject: forged via milter' \
		--add-header 'Authentication-Results: mx.postern.test; dkim=pass header.d=bank.test' \
		--add-header $'Authentication-Results: (fake)\r\n MX.Postern.Test;\r\n\tdmarc=pass header.from=bank.test' \
		--add-header 'Authentication-Results: relay.other.test; spf=pass smtp.mailfrom=x@other.test'
	local msg
	wait_until "grep -l '^Subject: forged via milter' '$T'/mail/postern.test/bob/new/* >/dev/null 2>&1" 20
	msg=$(grep -l '^Subject: forged via milter' "$T"/mail/postern.test/bob/new/*)
	cat "$msg"
	# Nothing of the forgeries reached the file ...
	[ "$(grep -c 'bank.test' "$msg")" -eq 0 ]
	# ... ours is first below Received, the filter's and the other
	# server's are kept.
	grep -A3 '^Received: from helo1.helo.test' "$msg" | grep -q '^Authentication-Results: mx.postern.test;$'
	grep -q '^Authentication-Results: mx.postern.test; dmarc=pass (added by the filter) header.from=filter.test' "$msg"
	grep -q '^Authentication-Results: relay.other.test; spf=pass' "$msg"
	[ "$(grep -ci '^Authentication-Results: *mx.postern.test' "$msg")" -eq 2 ]
	# The filter was shown ours and the other server's, not the forgeries.
	cat "$T/milter.log"
	grep -q '^eom ar=mx.postern.test; spf=pass .*smtp.mailfrom=someone@sign.test.*|relay.other.test; spf=pass smtp.mailfrom=x@other.test$' "$T/milter.log"
	! grep -q 'bank.test' "$T/milter.log"
	grep -q 'removed 2 Authentication-Results fields claiming authserv-id mx.postern.test from unknown\[127.0.0.1\]' "$T/log"
}

@test "HELO identity: its own spf result beside the MAIL FROM one, spf_helo= in the log, one lookup per HELO name in a session" {
	run session helo2.helo.test someone@sign.test helo2.helo.test other@nospf.test \
		helo3.helo.test someone@sign.test
	echo "$output"
	[ "$(grep -c '^data 250' <<<"$output")" -eq 3 ]
	local m1 m2 m3
	m1=$(message_of 'helo helo2.helo.test 0')
	m2=$(message_of 'helo helo2.helo.test 2')
	m3=$(message_of 'helo helo3.helo.test 4')
	sed -n '/^Authentication-Results: mx/,/^[^\t]/p' "$m1" > "$T/ar1"
	cat "$T/ar1"
	grep -qE $'^\tspf=pass .* smtp.mailfrom=someone@sign.test;' "$T/ar1"
	grep -qE $'^\tspf=pass .* smtp.helo=helo2.helo.test;' "$T/ar1"
	grep -qE $'^\tdmarc=pass .*header.from=sign.test' "$T/ar1"
	sed -n '/^Authentication-Results: mx/,/^[^\t]/p' "$m2" > "$T/ar2"
	grep -qE $'^\tspf=none .* smtp.mailfrom=other@nospf.test;' "$T/ar2"
	grep -qE $'^\tspf=pass .* smtp.helo=helo2.helo.test;' "$T/ar2"
	sed -n '/^Authentication-Results: mx/,/^[^\t]/p' "$m3" > "$T/ar3"
	grep -qE $'^\tspf=neutral .* smtp.helo=helo3.helo.test;' "$T/ar3"
	grep -q ': spf=pass (mailfrom sign.test), spf_helo=pass (helo2.helo.test), dkim=none, dmarc=pass' "$T/log"
	grep -q ': spf=none (mailfrom nospf.test), spf_helo=pass (helo2.helo.test), dkim=none' "$T/log"
	grep -q ': spf=pass (mailfrom sign.test), spf_helo=neutral (helo3.helo.test), dkim=none' "$T/log"
	# Two transactions after one EHLO: one lookup; EHLO again: a new one.
	[ "$(queries helo2.helo.test)" -eq 1 ]
	[ "$(queries helo3.helo.test)" -eq 1 ]
}

@test "HELO fail is refused at MAIL with 550 5.7.23 though MAIL FROM passes; an address literal or a one-label HELO is none without a lookup" {
	run session bad.helo.test someone@sign.test
	echo "$output"
	[[ "$output" == *"mail 550 5.7.23 SPF: HELO bad.helo.test does not designate 127.0.0.1 as a permitted sender"* ]]
	grep -q 'NOQUEUE: reject: MAIL from unknown\[127.0.0.1\]: 550 5.7.23 SPF: HELO bad.helo.test does not designate' "$T/log"
	# The null sender is checked as postmaster@HELO: the same refusal.
	run session bad.helo.test ''
	[[ "$output" == *"mail 550 5.7.23 SPF: bad.helo.test does not designate 127.0.0.1"* ]]
	[ "$(queries bad.helo.test)" -eq 2 ]
	run session '[127.0.0.1]' someone@sign.test 192.0.2.7 someone@sign.test nodots someone@sign.test
	echo "$output"
	[ "$(grep -c '^data 250' <<<"$output")" -eq 3 ]
	local m
	m=$(message_of 'helo \[127.0.0.1\] 0')
	sed -n '/^Authentication-Results: mx/,/^[^\t]/p' "$m" > "$T/ar4"
	cat "$T/ar4"
	grep -qE $'^\tspf=none \\(HELO is not a fully qualified domain name\\) smtp.helo="?\\[127.0.0.1\\]"?;' "$T/ar4"
	grep -q ': spf=pass (mailfrom sign.test), spf_helo=none (192.0.2.7), dkim=none' "$T/log"
	grep -q ': spf=pass (mailfrom sign.test), spf_helo=none (nodots), dkim=none' "$T/log"
	[ "$(queries 192.0.2.7)" -eq 0 ]
	[ "$(queries nodots)" -eq 0 ]
	! grep -q 'query\[TXT\] 127.0.0.1' "$T/dnsmasq.out"
}
