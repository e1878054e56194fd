#!/usr/bin/env bats
# The documents stay true: every manual page renders without a groff
# warning, every doc/ file and section that the tree cites exists, and
# what postern.conf(5) says about the transport_maps values relay:,
# local and retry: holds on a running suite (swaks as the client, the
# SMTP sink of tests/helpers/qmgr_sink.py as the next hop, lmtpd).

load helpers/suite
load helpers/qmgr

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

teardown() {
	sinks_stop
	suite_stop
}

@test "every manual page renders without groff warnings" {
	command -v groff >/dev/null || skip "groff is not installed"
	local m out bad=0
	for m in "$TOP"/man/*.[158]; do
		out=$(groff -ww -man -z "$m" 2>&1)
		if [ -n "$out" ]; then
			echo "# $m: $out"
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
}

# Citations look like doc/architecture.md, "Queue directories" in the
# code, and [queue-format.md](queue-format.md), "Cut files" inside doc/.
@test "every doc/ file and section the tree cites exists" {
	run python3 - "$TOP" <<'EOF'
import os, re, subprocess, sys
top = sys.argv[1]
files = subprocess.run(["git", "-C", top, "ls-files"], capture_output=True,
    text=True, check=True).stdout.split()
outside = re.compile(r'doc/([A-Za-z-]+\.md)(?:\)?,? "([^"]+)")?')
inside = re.compile(r'\b(architecture|queue-format|logging|HACKING)\.md\)?(?:,? "([^"]+)")?')
bad = 0
seen = 0
for f in files:
    path = os.path.join(top, f)
    if not os.path.isfile(path):
        continue
    try:
        text = open(path, encoding="utf-8").read()
    except UnicodeDecodeError:
        continue
    pattern = inside if f.startswith("doc/") else outside
    for m in pattern.finditer(text):
        name = m.group(1) if m.group(1).endswith(".md") else m.group(1) + ".md"
        target = os.path.join(top, "doc", name)
        seen += 1
        if not os.path.isfile(target):
            print("%s: cites doc/%s, which does not exist" % (f, name))
            bad += 1
            continue
        section = m.group(2)
        if section is None:
            continue
        heads = [l.lstrip("#").strip() for l in open(target, encoding="utf-8")
                 if l.startswith("#")]
        if section not in heads:
            print('%s: cites doc/%s, "%s": no such section' % (f, name,
                section))
            bad += 1
print("%d citations" % seen)
sys.exit(1 if bad or seen == 0 else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "transport_maps relay:, local and retry: work as postern.conf(5) says" {
	suite_init
	sink_start far
	table mailboxes <<EOF
list@lists.example.org	lists/
EOF
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	table transport <<EOF
relay.test	relay:[127.0.0.1]:$far_PORT
lists.example.org	local
paused.test	retry:4.4.1 outbound mail is paused
EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_start
	send_mail --from s@postern.test \
		--to a@relay.test,list@lists.example.org,b@paused.test
	# relay: is SMTP to the nexthop given, like smtp:
	wait_for_count "sink_count far" 1
	grep -q '^RCPT TO:<a@relay.test>' "$(sink_files far | sed 's/\.eml$/.env/')"
	# local: LMTP to lmtp_destination, into the Maildir mailbox_maps names
	wait_for_count "find '$T/mail/lists/new' -type f 2>/dev/null | wc -l" 1
	# retry: defers with its own status and text, and never bounces
	wait_for_log 'to=<b@paused.test>, relay=none, delay=[0-9.]+, dsn=4\.4\.1, status=deferred \(outbound mail is paused\)' 10
	[ "$(log_count 'non-delivery notification')" -eq 0 ]
	[ "$(sink_count far)" -eq 1 ]
}

@test "postern's exit statuses and start -v are as postern(8) says" {
	suite_init
	P=("$POSTERN" -c "$T/conf")
	run "${P[@]}" status;		[ "$status" -eq 1 ]
	run "${P[@]}" stop;		[ "$status" -eq 1 ]
	run "${P[@]}" reload;		[ "$status" -eq 1 ]
	run "${P[@]}" check;		[ "$status" -eq 0 ]
	run "${P[@]}" config myhostname no_such_key
	[ "$status" -eq 1 ]
	[[ "$output" == *"myhostname = mx.postern.test"* ]]
	run "$POSTERN" -c "$T/conf";	[ "$status" -eq 2 ]
	run "${P[@]}" no-such-command;	[ "$status" -eq 2 ]
	run "$POSTERN" -c;		[ "$status" -eq 2 ]
	run "$POSTERN" -x status;	[ "$status" -eq 2 ]
	run "${P[@]}" queue;		[ "$status" -eq 1 ]
	run "${P[@]}" map;		[ "$status" -eq 2 ]
	run "${P[@]}" map query "$T/conf/none" key
	[ "$status" -eq 2 ]
	# start -f -v: in the foreground, with the debug lines
	: > "$T/log"
	"${P[@]}" start -f -v >>"$T/log" 2>&1 &
	SUITE_PID=$!
	wait_for_log 'daemon started' 10
	wait_for_log 'master\[[0-9]+\]: debug: service smtp: started ' 10
	run "${P[@]}" status;		[ "$status" -eq 0 ]
	run "${P[@]}" start;		[ "$status" -eq 1 ]
	[[ "$output" == *"already running"* ]]
	run "${P[@]}" reload;		[ "$status" -eq 0 ]
	run "${P[@]}" stop;		[ "$status" -eq 0 ]
	run "${P[@]}" status;		[ "$status" -eq 1 ]
	# a configuration with an error: 1, whatever the command
	suite_conf no_such_key 1
	run "${P[@]}" status;		[ "$status" -eq 1 ]
	[[ "$output" == *"postern.conf:"* ]]
}
