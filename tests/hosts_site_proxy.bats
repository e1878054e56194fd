#!/usr/bin/env bats
# A site behind a load balancer, in network namespaces (issue 19): the
# real HAProxy (Debian's haproxy, private config) in front of two postern
# front ends that take the PROXY protocol, scaled to the test budget:
# 1,000 messages (SITE_MESSAGES).
#
#   sender 192.0.2.10   Python smtplib, straight at haproxy
#   lb     192.0.2.5    haproxy, mode tcp, balance roundrobin on :25,
#                       health checks; send-proxy-v2 to fe1, send-proxy
#                       (v1) to fe2
#   fe1    192.0.2.11   postern front end, smtp_listen ... proxy
#   fe2    192.0.2.12   postern front end, smtp_listen ... proxy
#   store  192.0.2.21   postern lmtpd, users u0..u19 (lmtp_destination
#                       of both front ends)
#
# The namespaces, the bridge and the cleanup are helpers/netns_site.bash:
# no default route, no packet leaves the test's namespaces. The sender
# opens a new connection every 10 messages, so that haproxy spreads the
# sessions, and retries a message whose session broke (on a new
# connection) until it is answered 250. The store is not started before
# the kill, so each front end holds what it took in its queue. Midway
# (0.4 of the mail acknowledged, while the sender goes on) fe1's master
# and every child get kill -9: its sessions are cut, haproxy sends the
# retries and new sessions to fe2. Then the store starts and fe1 starts
# again on its own queue; each sending thread, 10 messages after the
# kill (at 0.8 of the mail at the latest), waits until haproxy sees fe1
# up again, so that fe1 takes mail again. At the end: every
# acknowledged message in exactly one mailbox but for duplicates of
# messages in flight at the kill (a message that fe1 had queued when its
# 250 was lost: at most one a cut session); each Received header of the
# front ends names the sender's 192.0.2.10, carried by the PROXY
# header, never haproxy's 192.0.2.5. Prints sent, acknowledged,
# delivered, duplicates, missing, the share of each front end and the
# time.

load helpers/suite
load helpers/netns_site

SITE_MESSAGES=${SITE_MESSAGES:-1000}
SITE_USERS=20

setup() {
	command -v haproxy >/dev/null || skip "haproxy is not installed"
	site_netns_init
}

teardown() {
	site_cleanup
}

# haproxy_server_up NAME: does haproxy (its stats socket) say that
# server NAME of the back end "fronts" is UP?
haproxy_server_up() {
	/usr/bin/python3 - "$T/lb/haproxy.sock" "$1" <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_UNIX)
	try:
	    s.connect(sys.argv[1])
	except OSError:
	    sys.exit(1)   # haproxy not up yet
	s.sendall(b"show stat\n")
	data = b""
	while True:
	    chunk = s.recv(65536)
	    if not chunk:
	        break
	    data += chunk
	lines = data.decode().splitlines()
	head = lines[0].lstrip("# ").split(",")
	for line in lines[1:]:
	    row = dict(zip(head, line.split(",")))
	    if row.get("pxname") == "fronts" and row.get("svname") == sys.argv[2]:
	        sys.exit(0 if row.get("status", "").startswith("UP") else 1)
	sys.exit(1)
	PY
}

# The seq numbers of the delivered messages, one a line.
delivered_files() {
	find "$T/store/mail/site" -path '*/new/*' -type f -print0 2>/dev/null
}

delivered_seqs() {
	delivered_files | xargs -0 -r grep -h '^X-Site-Seq:' | awk '{ print $2 }'
}

delivered_unique() {
	delivered_seqs | sort -u | wc -l
}

# accepted NAME: the messages front end NAME took (its client= lines),
# before and after a restart.
accepted() {
	cat "$T/$1/log.before" "$T/$1/log" 2>/dev/null | grep -c ': client=' || true
}

@test "a site behind haproxy: two PROXY front ends, kill -9 of one midway, nothing lost, the client's address kept" {
	local t0=$SECONDS
	site_lan
	site_host sender 192.0.2.10
	site_host lb 192.0.2.5
	site_host fe1 192.0.2.11
	site_host fe2 192.0.2.12
	site_host store 192.0.2.21
	# No route out of any of them.
	run on sender ip route get 198.51.100.1
	[ "$status" -ne 0 ]

	local i mbox=""
	for ((i = 0; i < SITE_USERS; i++)); do
		mbox+="u$i@site.test	site/u$i/"$'\n'
	done

	# The store, started only after the kill (below).
	site_postern store store.site.test smtp_listen= \
		lmtp_listen=192.0.2.21:24 "mailbox_maps=hash:$T/store/conf/mailboxes"
	printf '%s' "$mbox" > "$T/store/conf/mailboxes"
	"$POSTERN" -c "$T/store/conf" map build "$T/store/conf/mailboxes"

	# The two front ends: only haproxy reaches their port, so the
	# listener trusts the header (postern.conf(5), "proxy").
	for i in 1 2; do
		site_postern "fe$i" "fe$i.site.test" \
			"smtp_listen=192.0.2.1$i:25 proxy" \
			smtpd_upstream_proxy_timeout=2s smtpd_peername_lookup=no \
			mydomains=site.test "mailbox_maps=hash:$T/fe$i/conf/mailboxes" \
			"lmtp_destination=[192.0.2.21]:24"
		printf '%s' "$mbox" > "$T/fe$i/conf/mailboxes"
		"$POSTERN" -c "$T/fe$i/conf" map build "$T/fe$i/conf/mailboxes"
		site_start "fe$i"
	done

	# The load balancer. A connection haproxy cannot make (fe1 dead, not
	# yet seen down by the checks) is retried on the other server
	# (option redispatch). Checks send the PROXY header too (LOCAL in
	# v2), as the server line asks for it.
	mkdir -p "$T/lb"
	cat > "$T/lb/haproxy.cfg" <<-CFG
	global
		maxconn 200
		stats socket $T/lb/haproxy.sock mode 600
	defaults
		mode tcp
		timeout connect 2s
		timeout client 30s
		timeout server 30s
		retries 3
		option redispatch 1
	frontend smtp
		bind 192.0.2.5:25
		default_backend fronts
	backend fronts
		balance roundrobin
		default-server check inter 500ms fastinter 250ms downinter 250ms rise 1 fall 1
		server fe1 192.0.2.11:25 send-proxy-v2
		server fe2 192.0.2.12:25 send-proxy
	CFG
	on_bg lb haproxy -f "$T/lb/haproxy.cfg" -db >"$T/lb/log" 2>&1 &
	SITE_PIDS+=($!)
	wait_until 'site_port_open sender 192.0.2.5 25' 20
	wait_until 'haproxy_server_up fe1 && haproxy_server_up fe2' 20
	local t_ready=$SECONDS

	# Send. Four threads; a message acknowledged with 250 goes to
	# acked; a session that breaks (or a 4xx) is counted as cut and the
	# message is sent again on a new connection. At 0.4 of the mail
	# acknowledged the sender makes the file "kill" and goes on, so that
	# the kill finds sessions open; a thread waits for the file "go"
	# (made once fe1 is back) when it has sent 10 messages after the
	# file "killed" appeared, or at message 0.8 at the latest, so that
	# there is mail left for fe1 after its restart.
	on_bg sender /usr/bin/python3 - "$SITE_MESSAGES" "$SITE_USERS" \
		"$T/acked" "$T/kill" "$T/killed" "$T/go" >"$T/inject.out" 2>&1 <<-'PY' &
	import os, smtplib, sys, threading, time
	total, users, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
	kill, killed, go = sys.argv[4], sys.argv[5], sys.argv[6]
	PER_CONNECTION = 10
	acked, failed, lock = [], [], threading.Lock()
	cut = [0]
	def connect():
	    deadline = time.time() + 60
	    while True:
	        try:
	            return smtplib.SMTP('192.0.2.5', 25, 'sender.test', timeout=30)
	        except (OSError, smtplib.SMTPException):
	            if time.time() > deadline:
	                raise
	            time.sleep(0.05)   # back-off before a new connection
	def close(s):
	    try:
	        s.quit()
	    except (OSError, smtplib.SMTPException):
	        s.close()
	def send(s, n):
	    rcpt = 'u%d@site.test' % (n % users)
	    msg = ('From: s@sender.test\r\nTo: %s\r\nSubject: site %d\r\n'
	           'X-Site-Seq: %d\r\n\r\nmessage %d\r\n' % (rcpt, n, n, n))
	    s.sendmail('s@sender.test', [rcpt], msg)
	def run(part):
	    s, used, after_kill = None, 0, 0
	    for n in range(part, total, 4):
	        if os.path.exists(killed):
	            after_kill += 1
	        if ((after_kill > 10 or n >= total * 8 // 10)
	                and not os.path.exists(go)):
	            if s is not None:
	                close(s)
	                s = None
	            deadline = time.time() + 120
	            while not os.path.exists(go) and time.time() < deadline:
	                time.sleep(0.05)
	        for attempt in range(20):
	            if s is None:
	                s, used = connect(), 0
	            try:
	                send(s, n)
	            except smtplib.SMTPResponseException as e:
	                if e.smtp_code >= 500:
	                    with lock:
	                        failed.append('message %d: %s' % (n, e))
	                    break
	            except (smtplib.SMTPRecipientsRefused,
	                    smtplib.SMTPSenderRefused) as e:
	                with lock:
	                    failed.append('message %d: %s' % (n, e))
	                break
	            except (OSError, smtplib.SMTPException):
	                pass
	            else:
	                with lock:
	                    acked.append(n)
	                    if len(acked) == total * 4 // 10:
	                        open(kill, 'w').close()
	                used += 1
	                if used >= PER_CONNECTION:
	                    close(s)
	                    s = None
	                break
	            with lock:
	                cut[0] += 1
	            s.close()
	            s = None
	        else:
	            with lock:
	                failed.append('message %d: 20 tries' % n)
	    if s is not None:
	        close(s)
	threads = [threading.Thread(target=run, args=(p,)) for p in range(4)]
	for t in threads: t.start()
	for t in threads: t.join()
	with open(out, 'w') as f:
	    f.write(''.join('%d\n' % n for n in sorted(acked)))
	for line in failed:
	    print(line)
	print('acknowledged %d cut %d' % (len(acked), cut[0]))
	PY
	local inject=$!
	SITE_PIDS+=("$inject")

	# Midway, with sessions open on both front ends: kill -9 of fe1,
	# master and every child at once.
	wait_for_file "$T/kill" 120
	kill -KILL $(tree_pids "$fe1_PID") 2>/dev/null || true
	wait "$fe1_PID" 2>/dev/null || true
	touch "$T/killed"
	local fe1_before fe1_queued
	fe1_before=$(accepted fe1)
	fe1_queued=$(site_queue_count fe1)
	[ "$fe1_queued" -gt 0 ]
	# The store comes up; fe1 starts again on its own queue; the rest of
	# the mail goes once haproxy has seen fe1 up.
	site_start store
	wait_until 'site_port_open fe2 192.0.2.21 24' 20
	site_start fe1
	wait_until 'haproxy_server_up fe1' 20
	touch "$T/go"

	wait "$inject" || { cat "$T/inject.out"; false; }
	cat "$T/inject.out"
	local acked cut
	acked=$(wc -l < "$T/acked")
	cut=$(awk '/^acknowledged/ { print $4 }' "$T/inject.out")
	[ "$acked" -eq "$SITE_MESSAGES" ]

	# Every acknowledged message delivered.
	wait_for_count delivered_unique "$acked" 120
	local t_done=$SECONDS
	local delivered duplicates missing
	delivered=$(delivered_seqs | wc -l)
	duplicates=$((delivered - $(delivered_unique)))
	missing=$(comm -23 <(sort "$T/acked") <(delivered_seqs | sort -u) | wc -l)
	local fe1_total fe1_after fe2_total fe1_sent_after
	fe1_total=$(accepted fe1)
	fe1_after=$((fe1_total - fe1_before))
	fe2_total=$(accepted fe2)
	fe1_sent_after=$(grep -c 'status=sent' "$T/fe1/log" || true)
	# The front ends' Received lines: the client PROXY named.
	local from_sender from_lb
	from_sender=$(delivered_files | xargs -0 -r grep -l \
		'^Received: from sender\.test (unknown \[192\.0\.2\.10\])' | wc -l)
	from_lb=$(delivered_files | xargs -0 -r grep -l '192\.0\.2\.5\]' | wc -l)
	echo "# site behind haproxy: sent=$SITE_MESSAGES acknowledged=$acked delivered=$delivered duplicates=$duplicates missing=$missing" >&3
	echo "# fe1 (PROXY v2) took $fe1_total ($fe1_before before kill -9, held $fe1_queued in its queue, delivered $fe1_sent_after after its restart, took $fe1_after more), fe2 (PROXY v1) took $fe2_total; sessions cut and retried $cut; Received from [192.0.2.10] $from_sender, from [192.0.2.5] $from_lb; setup $((t_ready - t0))s, mail $((t_done - t_ready))s" >&3
	[ "$missing" -eq 0 ]
	# Duplicates only from messages in flight at the kill: at most one
	# a cut session.
	[ "$duplicates" -le "$cut" ]
	# ... and each copy of a duplicate is another queue file: fe1's copy
	# from its queue and the retry's, taken anew by fe2 (or by fe1 once
	# it is back, when the retries met fe1 down until then: a second
	# file, as SMTP allows). No front end delivered one queue file
	# twice: its Received line's "by FE ... id QUEUEID" is unique.
	local same_file
	same_file=$(delivered_files | xargs -0 -r awk '
		/^[ \t]+by fe[12]\.site\.test \(postern\)/ &&
		    match($0, / id [0-9A-Za-z]+/) {
			print $2, substr($0, RSTART + 4, RLENGTH - 4)
		}' | sort | uniq -d | wc -l)
	[ "$same_file" -eq 0 ]
	local fe_ids
	fe_ids=$(delivered_files | xargs -0 -r grep -cH -E '^[[:space:]]+by fe[12]\.site\.test \(postern\)' | awk -F: '$NF == 1' | wc -l)
	[ "$fe_ids" -eq "$delivered" ]
	[ "$from_sender" -eq "$delivered" ]
	[ "$from_lb" -eq 0 ]
	# Both took mail, fe1 again after its restart, and delivered its queue.
	[ "$fe1_before" -gt 0 ] && [ "$fe1_after" -gt 0 ] && [ "$fe2_total" -gt 0 ]
	[ "$fe1_sent_after" -ge "$fe1_queued" ]
	# The logs name the real client too.
	[ "$(cat "$T/fe1/log.before" "$T/fe1/log" "$T/fe2/log" |
		grep -c 'client=unknown\[192\.0\.2\.5\]')" -eq 0 ]
	[ "$(cat "$T/fe1/log.before" "$T/fe1/log" "$T/fe2/log" |
		grep -c 'client=unknown\[192\.0\.2\.10\]')" -eq $((fe1_total + fe2_total)) ]
	# haproxy's health checks close at once, often before smtpd serves
	# them: a network client that is gone is never taken for a local
	# Unix-socket one (which skips DNSBL and the limits).
	[ "$(cat "$T/fe1/log.before" "$T/fe1/log" "$T/fe2/log" |
		grep -c 'connect from unknown\[unix\]')" -eq 0 ]
	# Nothing left in any queue.
	local q
	for q in fe1 fe2 store; do
		wait_until "[ \$(site_queue_count $q) -eq 0 ]" 30
	done
}
