#!/usr/bin/env bats
# qmgr end to end: mail accepted by smtpd (swaks) goes through qmgr and
# deliver to real peers (tests/helpers/qmgr_sink.py, Postfix's smtp-sink,
# lmtpd), with routing by relayhost and transport_maps, retries with
# backoff, flush, unreachable destinations and alias expansion.
# test-runner: long

load helpers/suite
load helpers/qmgr
load helpers/smtp_common

setup() {
	suite_init
}

teardown() {
	sinks_stop
	suite_stop
}

@test "mail is relayed to the next hop, logged, and removed from the queue" {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_start
	send_mail --from a@example.org --to b@example.net \
		--header "Subject: hello qmgr"
	wait_for_count "sink_count sink" 1
	wait_for_log ': removed' 10
	f=$(sink_files sink)
	grep -q '^Subject: hello qmgr' "$f"
	grep -q '^MAIL FROM:<a@example.org>' "${f%.eml}.env"
	grep -q '^RCPT TO:<b@example.net>' "${f%.eml}.env"
	grep -Eq 'qmgr\[[0-9]+\]: [0-9A-Za-z]{14}: from=<a@example.org>, size=[0-9]+, nrcpt=1 \(queue active\)' "$T/log"
	[ "$(queue_count)" -eq 0 ]
}

@test "transport_maps routes domains; error: bounces with its own status" {
	sink_start sink
	table transport <<EOF
routed.test	smtp:[127.0.0.1]:$sink_PORT
refused.test	error:5.7.1 this domain takes no mail
EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_start
	send_mail --from s@routed.test --to x@routed.test
	wait_for_count "sink_count sink" 1
	send_mail --from s@routed.test --to y@refused.test \
		--header "Subject: to refused"
	wait_for_count "sink_count sink" 2
	wait_for_log 'sender non-delivery notification: ' 10
	bounce=$(grep -l '^MAIL FROM:<>' "$T"/sink/*.env)
	grep -q '^RCPT TO:<s@routed.test>' "$bounce"
	run python3 "$BATS_TEST_DIRNAME/helpers/dsn_parse.py" "${bounce%.env}.eml"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^rcpt=<y@refused.test> action=failed status=5.7.1 .*this domain takes no mail'
	echo "$output" | grep -q '^returned-subject=to refused'
	grep -q 'to=<y@refused.test>, relay=none, .*dsn=5.7.1, status=bounced' "$T/log"
}

@test "a temporary failure is deferred, retried with backoff, then delivered" {
	sink_start sink
	touch "$T/sink/tempfail"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_start
	send_mail --from a@example.org --to later@example.net
	wait_for_log 'status=deferred' 10
	# Waiting in deferred/ (hashed), with its reason recorded.
	wait_for_count "queue_count deferred" 1
	# The retry may take the file to active/ between the find and the
	# grep (a slow machine): the reason travels with it, so look in both.
	wait_for_count "grep -alr '^Z 0 4.3.0 451 4.3.0 try again later' '$T/queue/deferred' '$T/queue/active' 2>/dev/null | wc -l" 1 10
	wait_for_count "log_count 'to=<later@example.net>.*status=deferred'" 2
	rm "$T/sink/tempfail"
	wait_for_count "sink_count sink" 1 20
	wait_for_log ': removed' 10
	[ "$(queue_count)" -eq 0 ]
}

@test "postern queue flush retries deferred mail at once" {
	sink_start sink
	touch "$T/sink/tempfail"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 1h
	suite_conf queue_run_delay 1h
	suite_start
	send_mail --from a@example.org --to flushme@example.net
	wait_for_log 'status=deferred' 10
	wait_for_count "queue_count deferred" 1
	rm "$T/sink/tempfail"
	sleep 2
	# Nothing retries it on its own within the hour...
	[ "$(sink_count sink)" -eq 0 ]
	[ "$(queue_count deferred)" -eq 1 ]
	qmgr_flush
	wait_for_count "sink_count sink" 1 10
	wait_for_log ': removed' 10
	[ "$(queue_count)" -eq 0 ]
}

@test "an unreachable destination is suspended and does not hold up others" {
	sink_and_dead_destination
	suite_start
	for i in 1 2 3; do
		send_mail --from a@example.org --to "u$i@dead.test"
	done
	send_mail --from a@example.org --to alive@example.net
	wait_for_count "sink_count sink" 1 15
	wait_for_log 'destination smtp:\[127.0.0.1\]:[0-9]+ is not reachable' 10
	wait_for_count "log_count 'to=<u[123]@dead.test>.*status=deferred'" 3
	# Deferred, not bounced, and waiting in deferred/.
	! grep -q 'non-delivery notification' "$T/log"
	wait_for_count "queue_count deferred" 3
}

@test "kill -9 of qmgr during a delivery: the message is taken again from active/" {
	# The sink keeps its reply to the end of data back while $T/slow/hold
	# exists, so the message sits in active/, its delivery in flight,
	# for as long as the test needs, whatever the machine's load.
	sink_start slow
	touch "$T/slow/hold"
	suite_conf relayhost "[127.0.0.1]:$slow_PORT"
	suite_start
	send_mail --from a@example.org --to slow@example.net
	wait_until "[ -e '$T/slow/holding' ]" 30 "the delivery in flight"
	[ "$(queue_count active)" -eq 1 ]
	qmgr=$(program_pid qmgr)
	[ -n "$qmgr" ]
	kill -9 "$qmgr"
	# master starts a new qmgr, which finds the message in active/.
	wait_for_log 'recovered 1 messages from active' 30
	rm "$T/slow/hold"
	wait_for_log ': removed' 40
	[ "$(queue_count)" -eq 0 ]
	# Delivered at least once; a second copy only from the delivery
	# that was in flight when qmgr died.
	n=$(sink_count slow)
	[ "$n" -ge 1 ] && [ "$n" -le 2 ]
}

@test "finished queue files are recycled: the next message reuses the inode" {
	sink_and_dead_destination
	# One smtpd, so that which file it holds is known: its door passes
	# the next message's file ahead with each commit (smtpd_door.c).
	suite_conf smtpd_processes 1
	suite_start
	send_mail --from a@example.org --to r1@example.net \
		--header "Subject: recycled one"
	wait_for_count "sink_count sink" 1
	wait_for_log ': removed' 10
	# The finished file waits in recycle/ instead of being unlinked.
	[ "$(find "$T/queue/recycle" -type f | wc -l)" -eq 1 ]
	[ "$(queue_count)" -eq 0 ]
	old=$(find "$T/queue/recycle" -type f -printf '%i')
	# Messages that stay (their destination is down) sit in deferred/.
	# The door makes each file one message ahead (its spare, made after
	# the first's commit while recycle/ was empty, went to the second);
	# the spare made after the second's commit is the recycled file,
	# and the third or, made a message later, the fourth sits in that
	# inode, holding only its own bytes.
	sleep 0.2	# past the door's pause after it last found recycle/ empty
	for n in second third fourth; do
		send_mail --from a@example.org --to stays@dead.test \
			--header "Subject: the $n"
	done
	wait_for_count "queue_count deferred" 3
	# qmgr may be moving it for a retry (deferred/, active/): read the
	# inode's name, mode and bytes together, again if it moved.
	local content= mode= f=
	for try in 1 2 3 4 5; do
		f=$(find "$T/queue/deferred" "$T/queue/active" -type f -inum "$old" | head -n1)
		[ -n "$f" ] && mode=$(stat -c %a "$f" 2>/dev/null) &&
			content=$(cat "$f" 2>/dev/null) && break
		f=
	done
	[ -n "$f" ]
	grep -aqE '^Subject: the (third|fourth)' <<< "$content"
	[ "$(grep -ac '^Subject: ' <<< "$content")" -eq 1 ]
	[ "$(find "$T/queue/recycle" -type f | wc -l)" -eq 0 ]
	! grep -aq 'recycled one' <<< "$content"
	[ "$mode" = 600 ]
}

@test "qmgr picks up new mail at once, without waiting for its periodic scan" {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_start
	wait_for_log 'qmgr\[[0-9]+\]: starting' 10
	# Past qmgr's start-up scans: from here only the inotify watch on
	# incoming/ brings the message in before the next scan, 10 s on.
	sleep 1
	! grep -q 'cannot watch the queue' "$T/log"
	send_mail --from a@example.org --to quick@example.net
	wait_for_count "sink_count sink" 1 5
}

@test "a message put on hold while its delivery is in flight is not delivered again after release" {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_start
	touch "$T/sink/hold"
	# b is delivered; soft is deferred, so the message stays queued.
	send_mail --from a@example.org --to b@example.net,soft@example.net
	# The sink has the data and keeps its 250 back: the job is in flight.
	wait_for_count '[ -e "$T/sink/holding" ] && echo 1' 1 30 || { ps -p "${SINK_PIDS[*]}" >&3; false; }
	id=$(find "$T/queue/active" -type f ! -name '.*' -printf '%f\n')
	[ -n "$id" ]
	run "$BUILD/postern" -c "$T/conf" queue hold "$id"
	[ "$status" -eq 0 ]
	rm "$T/sink/hold"
	wait_for_count "find '$T/queue/hold' -name '$id' | grep -c ." 1
	run "$BUILD/postern" -c "$T/conf" queue release "$id"
	[ "$status" -eq 0 ]
	# Released, it is taken again: soft is tried again, b is not.
	wait_for_count "log_count '$id: to=<soft@example.net>.*status=deferred'" 2
	[ "$(log_count "$id: to=<b@example.net>.*status=sent")" -eq 1 ]
	[ "$(sink_count sink)" -eq 1 ]
}

@test "pickup stamps the arrival time: a maildrop file saying T 1 does not expire at once" {
	# A relay host nobody listens on: the message is deferred, and would
	# bounce as expired if its arrival were 1970.
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_conf maximal_queue_lifetime 1d
	suite_start
	# A maildrop file as the unprivileged sendmail could write it.
	python3 - "$T/queue/maildrop" <<'PY'
import os, sys
content = b"Subject: old\r\n\r\nbody\r\n"
mid = "1xaC000000000A"
head = ("V 1\nI %s\nT 1.000000\nF a@example.org\nB 7BIT\nW 0\n"
        "R P - - b@example.net\nD %020d\n" % (mid, len(content))).encode()
tmp = os.path.join(sys.argv[1], "." + mid)
with open(tmp, "wb") as f:
    f.write(head + content + b"C %d\n" % len(content))
os.rename(tmp, os.path.join(sys.argv[1], mid))
PY
	wait_for_log 'uid=[0-9]+ from=<a@example.org>' 15
	wait_for_log 'to=<b@example.net>.*status=deferred' 15
	[ "$(log_count 'status=expired')" -eq 0 ]
	f=$(grep -l '^F a@example.org$' $(find "$T/queue/active" "$T/queue/deferred" -type f ! -name '.*'))
	[ -n "$f" ]
	t=$(sed -n 's/^T \([0-9]*\)\..*/\1/p' "$f")
	[ "$t" -gt $(( $(date +%s) - 300 )) ]
}

@test "a temporary file left by a killed smtpd is removed; one an smtpd is still writing is not" {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_start
	# Two sessions stop in the middle of their data: A and B.
	cat > "$T/half.py" <<'PY'
import smtplib, sys
port, name, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port)
print("client port", s.sock.getsockname()[1], flush=True)
s.ehlo("client.test")
s.mail("a@example.org")
s.rcpt("b%s@example.net" % name)
s.putcmd("DATA")
assert s.getreply()[0] == 354
s.send(b"Subject: half " + name.encode() + b"\r\n\r\nfirst part\r\n")
print("data begun", flush=True)
open(go).read()			# wait for the test
s.send(b"second part\r\n.\r\n")
print(s.getreply()[0], flush=True)
s.quit()
PY
	for s in A B; do
		mkfifo "$T/go$s"
		/usr/bin/python3 "$T/half.py" "$SMTP_PORT" "$s" "$T/go$s" \
			> "$T/session$s.out" 2>&1 &
		SINK_PIDS+=($!)	# killed by sinks_stop, whatever happens
	done
	for ((i = 0; i < 300; i++)); do
		[ "$(cat "$T"/session?.out | grep -c 'data begun')" -eq 2 ] && break
		sleep 0.1
	done
	[ "$(cat "$T"/session?.out | grep -c 'data begun')" -eq 2 ]
	# The smtpd serving A dies, its file half written (the data may
	# still be in its buffer: the file is found by the process).
	portA=$(sed -n 's/^client port //p' "$T/sessionA.out")
	pidA=$(ss -tnpH state established "( sport = :$SMTP_PORT and dport = :$portA )" |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)
	[ -n "$pidA" ]
	fileA=
	for fd in /proc/$pidA/fd/*; do
		f=$(readlink "$fd" 2>/dev/null) || continue
		[[ "$f" == "$T/queue/incoming/."* ]] && fileA=$f
	done
	# The worker and its door (smtpd_door.c) die together, as in a
	# crash of the whole service: nobody is left to remove the file.
	# (Killing the worker alone, the door removes it at once.)
	# Both are stopped first: killed one after the other, the door
	# could see the worker's end and remove the file in between.
	doorA=$(smtp_door_of "$pidA")
	[ -n "$doorA" ]
	kill -STOP "$doorA" "$pidA"
	kill -9 "$pidA" "$doorA"
	[ -n "$fileA" ]
	# Old enough for the cleaner (10 s of ctime), then a new qmgr.
	wait_for_count 'echo $(( $(date +%s) - $(stat -c %Z "$fileA") ))' 11 20
	"$BUILD/postern" -c "$T/conf" reload
	wait_for_log "removed stale temporary file $fileA " 20
	[ ! -e "$fileA" ]
	# B's smtpd still holds its file: kept, and B's message goes through.
	# Every temporary file left is one a live process holds: B's, and
	# its door's spare (smtpd_door.c), made after its answer.
	# (The cleaner's pass may log fileA before it reaches A's door's
	# spare: bounded wait.)
	[ -n "$(find "$T/queue/incoming" -name '.*' -type f)" ]
	all_held() {
		local f
		for f in $(find "$T/queue/incoming" -name '.*' -type f); do
			find /proc/[0-9]*/fd -maxdepth 1 -lname "$f" 2>/dev/null |
				grep -q . || return 1
		done
	}
	wait_until all_held 10 "only held temporary files in incoming/"
	echo go > "$T/goB"
	wait_for_count "grep -c 250 '$T/sessionB.out'" 1
	wait_for_count "sink_count sink" 1
	grep -q '^Subject: half B' $(sink_files sink)
}
