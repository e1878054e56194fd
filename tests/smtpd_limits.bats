#!/usr/bin/env bats
# smtpd: limits and policy that need their own configuration: message size,
# recipients, timeouts, error and junk counters, relay denial, broken
# tables, and a full or unwritable queue. One instance per test.
# test-runner: long

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup() {
	suite_init
	smtp_maps
}

teardown() {
	if [ -n "${TMPFS_MOUNTED:-}" ]; then
		suite_halt || true
		umount "$T/queue" 2>/dev/null || true
		TMPFS_MOUNTED=
	fi
	suite_stop
}

# Files of the queue that are messages or half-written messages.
# The files of the queue; the next message's file that a worker holds
# ahead between messages (smtpd_door.c) is not one.
all_queue_files() {
	queue_files_but_ahead | wc -l
}

@test "message_size_limit: SIZE= at MAIL, a growing body, a BDAT chunk" {
	suite_conf message_size_limit 10k
	suite_start
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org> SIZE=20000\r\nQUIT\r\n'
	replies
	printf '%s\n' "${lines[@]}" | grep -qx "250-SIZE 10240"
	[ "${reply[2]}" = "552 5.3.4 Message size exceeds fixed limit" ]

	body=$(python3 -c 'print("x" * 76 + "\\r\\n", end="")')
	big=$(for i in $(seq 200); do printf '%s' "$body"; done)
	run raw 'EHLO c.test\r\nMAIL FROM:<big@example.org> SIZE=1000\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n' "$big" '.\r\nNOOP\r\nQUIT\r\n'
	replies
	[ "${reply[5]}" = "552 5.3.4 Error: message file too big" ]
	[ "${reply[6]}" = "250 2.0.0 Ok" ]
	wait_for_log 'NOQUEUE: reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 552 5.3.4 Error: message file too big; from=<big@example.org>'

	chunk=$(python3 -c 'print("y" * 12000, end="")')
	run raw 'EHLO c.test\r\nMAIL FROM:<bdat@example.org>\r\nRCPT TO:<alice@postern.test>\r\nBDAT 12000\r\n' "$chunk" 'BDAT 5 LAST\r\nyyyyyNOOP\r\nQUIT\r\n'
	replies
	[ "${reply[4]}" = "552 5.3.4 Error: message file too big" ]
	# later chunks of the same message get the same answer, and are read
	[ "${reply[5]}" = "552 5.3.4 Error: message file too big" ]
	[ "${reply[6]}" = "250 2.0.0 Ok" ]
	[ "$(all_queue_files)" -eq 0 ]
}

@test "smtpd_recipient_limit: 452 4.5.3 past the limit" {
	suite_conf smtpd_recipient_limit 2
	suite_start
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nRCPT TO:<root@postern.test>\r\nRCPT TO:<carol@localhost>\r\nDATA\r\nSubject: two\r\n\r\nx\r\n.\r\nQUIT\r\n'
	replies
	[ "${reply[3]}" = "250 2.1.5 Ok" ]
	[ "${reply[4]}" = "250 2.1.5 Ok" ]
	[ "${reply[5]}" = "452 4.5.3 Error: too many recipients" ]
	[[ "${reply[7]}" == "250 2.0.0 Ok: queued as "* ]]
	id=$(queued_id "${reply[7]}")
	[ "$(qtool show "$id" | grep -c '"address"')" -eq 2 ]
}

@test "smtpd_recipient_limit: a client that pipelines far past it is not cut off" {
	# 30 over a limit of 2: with smtpd_error_limit 20 the 452s would
	# have ended the session; they are not errors (RFC 5321 4.5.3.1.10).
	suite_conf smtpd_recipient_limit 2
	suite_start
	rcpts=$(for i in $(seq 32); do printf 'RCPT TO:<alice+%s@postern.test>\\r\\n' "$i"; done)
	run raw "EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n$rcpts" 'DATA\r\nSubject: many\r\n\r\nx\r\n.\r\nQUIT\r\n'
	echo "$output"
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^452 4.5.3 Error: too many recipients$')" -eq 30 ]
	printf '%s\n' "${lines[@]}" | grep -q '^250 2.0.0 Ok: queued as '
	[ "${lines[-1]}" = "221 2.0.0 Bye" ]
	# Past 1000 of them (Postfix's smtpd_recipient_overshoot_limit)
	# they count as errors again.
	rcpts=$(for i in $(seq 1030); do printf 'RCPT TO:<alice+%s@postern.test>\\r\\n' "$i"; done)
	run raw "EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n$rcpts" 'QUIT\r\n'
	printf '%s\n' "${lines[@]}" | grep -q '^421 4.7.0 .*too many errors'
}

@test "smtpd_timeout: a silent client gets 421 4.4.2, mid-DATA queues nothing" {
	suite_conf smtpd_timeout 2s
	suite_start
	run raw --timeout 15 'EHLO slow.test\r\n'
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "421 4.4.2 mx.postern.test Error: timeout exceeded" ]
	wait_for_log 'timeout after EHLO from localhost\[127.0.0.1\]'
	run raw --timeout 15 'EHLO slow.test\r\nMAIL FROM:<slow@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: slow\r\n\r\npart'
	[ "${lines[-1]}" = "421 4.4.2 mx.postern.test Error: timeout exceeded" ]
	wait_for_log 'timeout after DATA from localhost\[127.0.0.1\]'
	[ "$(all_queue_files)" -eq 0 ]
}

@test "smtpd_error_limit: 421 after too many errors" {
	suite_conf smtpd_error_limit 3
	suite_start
	run raw 'EHLO c.test\r\nFOO\r\nBAR\r\nBAZ\r\nNOOP\r\nQUIT\r\n'
	replies
	[ "${reply[4]}" = "500 5.5.2 Error: command not recognized" ]
	[ "${reply[5]}" = "421 4.7.0 mx.postern.test Error: too many errors" ]
	[ "${#reply[@]}" -eq 6 ]
	wait_for_log 'too many errors after'
}

@test "smtpd_junk_command_limit: 421 after too many commands without mail" {
	suite_conf smtpd_junk_command_limit 5
	suite_start
	run raw 'EHLO c.test\r\nNOOP\r\nNOOP\r\nRSET\r\nVRFY x\r\nNOOP\r\nNOOP\r\nQUIT\r\n'
	[ "${lines[-1]}" = "421 4.7.0 mx.postern.test Error: too many commands without mail" ]
	# a queued message starts the count again
	run raw 'EHLO c.test\r\nNOOP\r\nNOOP\r\nMAIL FROM:<j@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: j\r\n\r\nx\r\n.\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n'
	[ "${lines[-1]}" = "221 2.0.0 Bye" ]
}

@test "relay denied outside mynetworks, on smtp and submission; local mail accepted" {
	suite_conf mynetworks 192.0.2.0/24
	# submission would refuse MAIL without AUTH (smtpd_tls.bats tests
	# that); here the relay rule itself is checked on both ports.
	suite_conf submission_require_auth no
	suite_start
	for port in "$SMTP_PORT" "$SUBMISSION_PORT"; do
		run raw_port "$port" 'EHLO c.test\r\nMAIL FROM:<r@example.org>\r\nRCPT TO:<victim@elsewhere.example>\r\nRCPT TO:<x@[192.0.2.1]>\r\nRCPT TO:<alice@postern.test>\r\nRCPT TO:<postmaster>\r\nQUIT\r\n'
		replies
		[ "${reply[3]}" = "554 5.7.1 <victim@elsewhere.example>: Relay access denied" ]
		[ "${reply[4]}" = "554 5.7.1 <x@[192.0.2.1]>: Relay access denied" ]
		[ "${reply[5]}" = "250 2.1.5 Ok" ]
		[ "${reply[6]}" = "250 2.1.5 Ok" ]
	done
	wait_for_log 'NOQUEUE: reject: RCPT from localhost\[127.0.0.1\]: 554 5.7.1 <victim@elsewhere.example>: Relay access denied; from=<r@example.org> to=<victim@elsewhere.example> proto=ESMTP helo=<c.test>'
}

@test "a table that cannot be read: 451 4.3.0, never 550" {
	suite_conf virtual_alias_maps "hash:$T/conf/missing"
	suite_start
	run raw 'EHLO c.test\r\nMAIL FROM:<t@example.org>\r\nRCPT TO:<alice@postern.test>\r\nRCPT TO:<unknown@postern.test>\r\nQUIT\r\n'
	replies
	[ "${reply[3]}" = "250 2.1.5 Ok" ]
	[ "${reply[4]}" = "451 4.3.0 <unknown@postern.test>: Recipient address rejected: Temporary lookup failure" ]
}

@test "queue not writable: 451 4.3.0 at DATA, nothing left behind" {
	suite_start
	chmod 0500 "$T/queue/incoming"
	run raw 'EHLO c.test\r\nMAIL FROM:<w@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nQUIT\r\n'
	replies
	chmod 0700 "$T/queue/incoming"
	[ "$(id -u)" -ne 0 ] || [ "$TEST_USER" != root ] || skip "root ignores modes"
	[ "${reply[4]}" = "451 4.3.0 Error: queue file write error" ]
	[ "$(all_queue_files)" -eq 0 ]
	wait_for_log 'NOQUEUE: cannot create queue file'
}

@test "full disk: 452 4.3.1 after the data, no partial file" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a small tmpfs"
	mkdir -p "$T/queue"
	mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/queue" 2>/dev/null ||
		skip "cannot mount tmpfs here"
	TMPFS_MOUNTED=1
	# No size limit, so the check at MAIL (queue_minfree, 1.5 times
	# message_size_limit) lets it in: here the write itself runs out.
	suite_conf message_size_limit 0
	suite_start
	run psend --size-mb 2 full@example.org alice@postern.test
	[ "$status" -eq 1 ]
	echo "$output" | grep -q "^DATA 452 4.3.1 Error: insufficient system storage"
	[ "$(all_queue_files)" -eq 0 ]
	# and with room again, mail flows
	run psend small@example.org alice@postern.test
	[ "$status" -eq 0 ]
}

@test "IPv6 client: [IPv6:::1] in Received and attributes, ::1 in mynetworks" {
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT, [::1]:$SMTP_PORT"
	# smtpd's client-name look-up goes through NSS, not dns_servers: a
	# host without "::1" in /etc/hosts would ask its resolver for ::1's
	# PTR. The checks below take any name.
	suite_conf smtpd_peername_lookup no
	suite_start
	run raw --host ::1 'EHLO v6.test\r\nMAIL FROM:<v6@example.org>\r\nRCPT TO:<rcpt@remote.example>\r\nDATA\r\nSubject: v6\r\n\r\nx\r\n.\r\nQUIT\r\n'
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool show "$id"
	echo "$output" | grep -q '"client_addr": "::1"'
	qtool content "$id" | grep -q '^Received: from v6.test ([^ ]* \[IPv6:::1\])'
	wait_for_log "$id: client=[^ ]*\[::1\]"
}

@test "queue_minfree: a queue file system without room answers 452 4.3.1 at MAIL, before the upload" {
	# More free space than any test machine has: refused at MAIL.
	suite_conf queue_minfree 999999999999999
	suite_start
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "452 4.3.1 Error: insufficient system storage" ]
	wait_for_log 'NOQUEUE: reject: MAIL from .*452 4.3.1 insufficient system storage'
}

@test "an announced SIZE larger than the free space is 452 4.3.1; an ordinary MAIL is accepted" {
	suite_conf message_size_limit 0
	suite_start
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org> SIZE=999999999999999\r\nMAIL FROM:<a@example.org> SIZE=1000\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "452 4.3.1 Error: insufficient system storage" ]
	[ "${reply[3]}" = "250 2.1.0 Ok" ]
}

@test "a queue file system out of inodes answers 452 4.3.1, not 451" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a small tmpfs"
	mkdir -p "$T/queue"
	mount -t tmpfs -o size=64m,nr_inodes=64,mode=0755 tmpfs "$T/queue" \
		2>/dev/null || skip "cannot mount tmpfs here"
	TMPFS_MOUNTED=1
	# Room for 1.5 times the size limit: only the inodes are short.
	suite_conf message_size_limit 10m
	suite_start
	# Use up every inode left, as a full spool would.
	mkdir "$T/queue/filler"
	i=0
	while touch "$T/queue/filler/$i" 2>/dev/null; do i=$((i + 1)); done
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "452 4.3.1 Error: insufficient system storage" ]
	# Inodes run out between MAIL and DATA: the queue file cannot be
	# made, and that too is 452 4.3.1 (it was 451 4.3.0).
	rm -rf "$T/queue/filler"
	run /usr/bin/python3 - "$SMTP_PORT" "$T/queue/filler" <<-'PY'
	import os, smtplib, sys
	s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
	s.ehlo("c.test")
	print(s.mail("a@example.org"))
	print(s.rcpt("alice@postern.test"))
	os.mkdir(sys.argv[2])
	i = 0
	try:
	    while True:
	        open(os.path.join(sys.argv[2], str(i)), "w").close()
	        i += 1
	except OSError:
	    pass
	print(s.docmd("DATA"))
	s.quit()
	PY
	echo "$output"
	[[ "${lines[2]}" == "(452, b'4.3.1 Error: insufficient system storage')" ]]
}
