#!/usr/bin/env bats
# ops_pflogsumm: postern's log read by the tools Postfix administrators
# already run. The same scripted day of traffic (tests/helpers/ops_traffic.py:
# received, delivered locally through an alias and remotely, deferred,
# bounced, rejected at RCPT) goes through postern and through a private
# Postfix (bench/postfix-instance) set up alike; Debian's pflogsumm, told
# postern's syslog name, must count the same on both logs, and fail2ban's
# postfix filter must find the same rejected client. Then the queue ID of
# a local submission (sendmail -v) is followed through the log.
# Needs root: "postfix start" runs Postfix's own master.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/qmgr

# A private Postfix set up as the postern instance is: local.test in
# Maildirs through virtual(8) (alice, bob, the alias team), every other
# domain to the sink at [127.0.0.1]:SINK_PORT, its log in DIR/maillog.
# Debian's master.cf, with chroot off, as bench/postfix-instance does.
postfix_start() {
	local dir=$1 port=$2 sink_port=$3 conf=$1/etc
	mkdir -p "$conf" "$dir/spool" "$dir/data" "$dir/vmail"
	chown nobody:nogroup "$dir/vmail"
	chown postfix "$dir/data"
	cp /usr/share/postfix/master.cf.dist "$conf/master.cf"
	printf 'alice@local.test alice/\nbob@local.test bob/\n' \
		> "$conf/vmailbox"
	printf 'team@local.test alice@local.test, bob@local.test\n' \
		> "$conf/valias"
	cat > "$conf/main.cf" <<-CF
	compatibility_level = 3.6
	queue_directory = $dir/spool
	data_directory = $dir/data
	myhostname = mx.local.test
	mydestination =
	inet_interfaces = loopback-only
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	relayhost = [127.0.0.1]:$sink_port
	alias_maps =
	alias_database =
	biff = no
	virtual_mailbox_domains = local.test
	virtual_mailbox_base = $dir/vmail
	virtual_mailbox_maps = hash:$conf/vmailbox
	virtual_alias_maps = hash:$conf/valias
	virtual_uid_maps = static:$(id -u nobody)
	virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
	smtpd_tls_security_level = none
	smtp_tls_security_level = none
	maillog_file_prefixes = $dir
	maillog_file = $dir/maillog
	CF
	postmap -c "$conf" "hash:$conf/vmailbox"
	postmap -c "$conf" "hash:$conf/valias"
	postconf -c "$conf" -M# smtp/inet
	postconf -c "$conf" -M "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd"
	postconf -c "$conf" -F '*/*/chroot = n'
	if ! postfix -c "$conf" start >/dev/null 2>&1; then
		sed 's/^/# /' "$dir/maillog" >&3 2>/dev/null
		return 1
	fi
	wait_for_port "$port" 10
}

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for postfix start"
	command -v postfix >/dev/null || skip "postfix not installed"
	command -v pflogsumm >/dev/null || skip "pflogsumm not installed"
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	sink_start pnsink
	sink_start pfsink
	# free_port may hand out a port again while nobody listens on it:
	# the listeners of postern must not be the sinks'.
	SMTP_PORT=$(free_port)
	SUBMISSION_PORT=$(free_port)
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT"
	suite_conf submission_listen "127.0.0.1:$SUBMISSION_PORT"
	suite_conf mydomains local.test
	suite_conf relayhost "[127.0.0.1]:$pnsink_PORT"
	# One try per deferred message within the test, as Postfix's
	# 300 s backoff gives: the deferral counts must compare.
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 2h
	suite_conf queue_run_delay 1h
	table mailboxes <<-MAP
	alice@local.test	local.test/alice/
	bob@local.test	local.test/bob/
	MAP
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	table aliases -a <<-MAP
	team: alice@local.test, bob@local.test
	MAP
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_start

	PF="$T/postfix"
	PF_PORT=$(free_port)
	postfix_start "$PF" "$PF_PORT" "$pfsink_PORT"
	export PF PF_PORT
}

teardown_file() {
	if [ -n "${PF:-}" ]; then
		postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
	fi
	sinks_stop
	echo "# ops_pflogsumm.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

# The count of delivery lines with STATUS in FILE (pflogsumm's shape:
# not lmtpd's, whose lines carry maildir=).
status_count() {
	grep -E "status=$1 " "$2" | grep -vc 'maildir=' || true
}

# postern's log as syslog would write it: a timestamp and a host name.
syslog_shape() {
	sed "s/^/$(LC_ALL=C date '+%b %e %H:%M:%S') host /" "$T/log"
}

# The "Grand Totals" of pflogsumm: "NAME=COUNT" lines.
totals() {
	pflogsumm "$@" | sed -n '/^Grand Totals/,/^Per-Day/p' |
		sed -nE -e 's/^ +([0-9]+[km]?) +deferred +\(([0-9]+) +deferrals\)$/deferred=\1\ndeferrals=\2/p' \
			-e 's/^ +([0-9]+[km]?) +([a-z][a-z /-]*[a-z])( .*)?$/\2=\1/p'
}

@test "pflogsumm counts the same on postern's log and on Postfix's" {
	run -0 /usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/ops_traffic.py" \
		"$SMTP_PORT"
	run -0 /usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/ops_traffic.py" \
		"$PF_PORT"
	# Five deliveries (alice, the alias's two, dave, the bounce notice
	# to alice), one bounce, one deferral, on each side.
	wait_for_count "status_count sent $T/log" 5 20
	wait_for_count "status_count sent $PF/maillog" 5 20
	wait_for_count "status_count bounced $T/log" 1
	wait_for_count "status_count bounced $PF/maillog" 1
	wait_for_count "status_count deferred $T/log" 1
	wait_for_count "status_count deferred $PF/maillog" 1

	# One status=sent line per recipient and delivery: lmtpd's lines
	# have a shape of their own; orig_to= names the alias, as Postfix's.
	[ "$(grep -c 'status=sent' "$T/log")" -eq 5 ]
	! grep -E 'postern/lmtpd\[[0-9]+\]: .*(to=<|status=)' "$T/log"
	grep -cE 'postern/lmtpd\[[0-9]+\]: [0-9A-Za-z]{14}: rcpt=<(alice|bob)@local.test>, .*result=stored' "$T/log"
	local who
	for who in alice bob; do
		grep -E "postern/deliver\[[0-9]+\]: [0-9A-Za-z]{14}: to=<$who@local.test>, orig_to=<team@local.test>, relay=.*status=sent" "$T/log"
		grep -E "postfix/virtual\[[0-9]+\]: [0-9A-Z]+: to=<$who@local.test>, orig_to=<team@local.test>, relay=.*status=sent" "$PF/maillog"
	done

	syslog_shape > "$T/maillog"
	totals --syslog-name=postern "$T/maillog" > "$T/postern.totals"
	totals "$PF/maillog" > "$T/postfix.totals"
	paste "$T/postern.totals" "$T/postfix.totals" | sed 's/^/# /' >&3
	local key
	for key in received delivered forwarded deferred bounced rejected \
		deferrals senders "sending hosts/domains" recipients \
		"recipient hosts/domains"; do
		grep -qx "$key=[0-9]*" "$T/postfix.totals"
		[ "$(grep "^$key=" "$T/postern.totals")" = \
			"$(grep "^$key=" "$T/postfix.totals")" ]
	done
	# Sanity: the traffic is what it should be.
	grep -qx 'received=4' "$T/postern.totals"
	grep -qx 'delivered=5' "$T/postern.totals"
	grep -qx 'rejected=1' "$T/postern.totals"
	# Bytes: each MTA adds its own Received: field (and writes its own
	# bounce notice), so the sums differ by those alone: within 400
	# bytes a message received, and 3000 for the notice delivered.
	local pn pf
	pn=$(sed -n 's/^bytes received=//p' "$T/postern.totals")
	pf=$(sed -n 's/^bytes received=//p' "$T/postfix.totals")
	echo "# bytes received: postern $pn, Postfix $pf" >&3
	[ "$pn" -gt 15000 ]
	[ $((pn > pf ? pn - pf : pf - pn)) -le $((4 * 400)) ]
	pn=$(sed -n 's/^bytes delivered=//p' "$T/postern.totals")
	pf=$(sed -n 's/^bytes delivered=//p' "$T/postfix.totals")
	echo "# bytes delivered: postern $pn, Postfix $pf" >&3
	[ "$pn" -gt 15000 ]
	[ $((pn > pf ? pn - pf : pf - pn)) -le $((4 * 400 + 3000)) ]
}

@test "fail2ban's postfix filter finds the client rejected at RCPT in both logs" {
	command -v fail2ban-regex >/dev/null || skip "fail2ban not installed"
	syslog_shape > "$T/maillog"
	# The filter's _daemon names Postfix's tag; an admin sets postern's.
	run -0 fail2ban-regex "$T/maillog" 'postfix[_daemon=postern/\w+]'
	local pn_hits
	pn_hits=$(printf '%s\n' "$output" | sed -n 's/^Failregex: \([0-9]*\) total.*/\1/p')
	run -0 fail2ban-regex "$PF/maillog" postfix
	local pf_hits
	pf_hits=$(printf '%s\n' "$output" | sed -n 's/^Failregex: \([0-9]*\) total.*/\1/p')
	echo "# fail2ban matches: postern $pn_hits, Postfix $pf_hits" >&3
	[ "$pn_hits" -eq 1 ]
	[ "$pn_hits" -eq "$pf_hits" ]
}

@test "a local submission keeps the ID sendmail -v printed, from pickup to removal" {
	run -0 --separate-stderr "$BUILD/sendmail" -v -C "$T/conf" \
		-f alice@local.test bob@local.test <<-'MSG'
	Subject: local one
	Message-ID: <local-1@traffic.test>

	hello from sendmail
	MSG
	local id
	id=$(printf '%s\n' "$stderr" | sed -n 's/.*queued as \([0-9A-Za-z]*\)$/\1/p')
	[ -n "$id" ]
	wait_for_log "postern/qmgr\[[0-9]+\]: $id: removed"
	grep -E "postern/pickup\[[0-9]+\]: $id: uid=[0-9]+ from=<alice@local.test>$" "$T/log"
	grep -E ": $id: message-id=<local-1@traffic.test>$" "$T/log"
	grep -E "postern/qmgr\[[0-9]+\]: $id: from=<alice@local.test>, size=[0-9]+, nrcpt=1 \(queue active\)" "$T/log"
	grep -E "postern/deliver\[[0-9]+\]: $id: to=<bob@local.test>, .*status=sent" "$T/log"
	# pflogsumm counts it as received, from its pickup line.
	syslog_shape > "$T/maillog"
	totals --syslog-name=postern "$T/maillog" > "$T/postern.totals"
	grep -qx 'received=5' "$T/postern.totals"
	grep -qx 'delivered=6' "$T/postern.totals"
	# Every message of the day has its message-id= line (Postfix's
	# cleanup shape), written before qmgr's from= line of the same ID.
	local q
	for q in $(sed -nE 's/.*postern\/smtpd\[[0-9]+\]: ([0-9A-Za-z]{14}): client=.*/\1/p' "$T/log"); do
		grep -qE "postern/smtpd\[[0-9]+\]: $q: message-id=<ops-[0-9]@traffic.test>$" "$T/log"
		[ "$(grep -nE ": $q: (client|from)=" "$T/log" | head -n1 | grep -c 'client=')" -eq 1 ]
	done
}

# logwatch's postfix service script as logwatch runs it, on a log: its
# summary section.
logwatch_summary() {
	perl /usr/share/logwatch/scripts/services/postfix --detail 10 "$@" |
		sed -n '/Summary/,/Detail/p'
}

# The count in front of LABEL in a logwatch summary.
lw() {
	awk -v l="$1" 'match($0, /^ *[0-9.]+[KM]? +/) {
		rest = substr($0, RLENGTH + 1); sub(/  +.*$/, "", rest)
		if (rest == l) { split($0, a, " "); print a[1]; exit } }' "$2"
}

@test "logwatch's postfix script reads postern's log given its syslog name and long queue IDs" {
	[ -f /usr/share/logwatch/scripts/services/postfix ] ||
		skip "logwatch not installed"
	syslog_shape > "$T/maillog"
	# What an admin puts in /etc/logwatch/conf/services/postfix.conf
	# (doc/logging.md), as options of the script.
	perl /usr/share/logwatch/scripts/services/postfix --detail 10 \
		--syslog_name postern --long_queue_ids < "$T/maillog" > "$T/lw.postern"
	logwatch_summary < "$PF/maillog" > "$T/lw.postfix"
	sed -n '/Summary/,/Detail/p' "$T/lw.postern" > "$T/lw.postern.sum"
	sed 's/^/# /' "$T/lw.postern.sum" >&3
	local label
	for label in Rejected "5xx Reject unknown user" Deferred Deferrals \
		"Bounced (local)"; do
		echo "# $label: postern $(lw "$label" "$T/lw.postern.sum"), Postfix $(lw "$label" "$T/lw.postfix")" >&3
		[ -n "$(lw "$label" "$T/lw.postern.sum")" ]
		[ "$(lw "$label" "$T/lw.postern.sum")" = "$(lw "$label" "$T/lw.postfix")" ]
	done
	# Postfix says Delivered for local and "Sent via SMTP" for remote
	# mail; postern's one deliver program is "Delivered" for both.
	local pn_del pf_del pf_smtp
	pn_del=$(lw Delivered "$T/lw.postern.sum")
	pf_del=$(lw Delivered "$T/lw.postfix")
	pf_smtp=$(lw "Sent via SMTP" "$T/lw.postfix")
	[ "$pn_del" -ge $((pf_del + pf_smtp)) ]
	# No delivery, acceptance or removal line is left unmatched.
	sed -n '/Unmatched Entries/,$p' "$T/lw.postern" > "$T/lw.unmatched"
	[ -z "$(grep -E 'status=|client=|nrcpt=.*queue active|: removed$' "$T/lw.unmatched")" ]
}
