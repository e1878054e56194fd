# peers.bash - real peers for deliver's tests: dnsmasq (DNS), Postfix's
# smtp-sink (SMTP/LMTP server), a recording relay. Every peer runs on
# loopback, is started in the background and is killed only by its PID
# (peers_stop, from teardown).
#
#   load helpers/peers
#   start_dnsmasq --mx-host=two.test,mx1.two.test,10 ...   sets DNS_PORT
#   start_sink NAME [smtp-sink options] ADDR:PORT           output $T/NAME.out
#   deliver_job [deliver-job options]                        runs a job
#
# For files whose tests hand deliver jobs against these peers (dane,
# mtasts, tlsrpt, tls_policy...):
#   peers_setup [SMTP_TIMEOUT [CONNECT_TIMEOUT]]
#                     suite_init with short SMTP timers (smtp_timeout 5s,
#                     smtp_connect_timeout 2s unless given); starts the
#                     test's clock
#   peers_teardown    stops the suite, every peer and the Postfix peer;
#                     prints the test's time
#   pf_job NEXTHOP    one message to ok@pf.test; its result in $output
#   last_qid          the queue ID in that $output, for deliver's log lines

PEER_PIDS=()

peers_stop() {
	local pid
	for pid in "${PEER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PEER_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	PEER_PIDS=()
}

# dnsmasq answering only from its command line; everything under .test
# not listed is NXDOMAIN. Sets DNS_PORT and the suite's dns_servers.
start_dnsmasq() {
	DNS_PORT=$(free_dns_port)
	dnsmasq --no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 \
		--bind-interfaces --no-resolv --no-hosts --conf-file=/dev/null \
		--pid-file= --local=/test/ "$@" >"$T/dnsmasq.out" 2>&1 &
	PEER_PIDS+=($!)
	export DNS_PORT
	suite_conf dns_servers "127.0.0.1:$DNS_PORT"
	wait_for_log started 20 "$T/dnsmasq.out" && return 0
	echo "# dnsmasq did not start:" >&3
	sed 's/^/# /' "$T/dnsmasq.out" >&3
	return 1
}

# Is a TCP port listening? (Checked without connecting to it.)
listening() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# start_sink NAME [options] ENDPOINT: smtp-sink -v, output in $T/NAME.out.
start_sink() {
	local name=$1
	shift
	local user=()
	[ "$(id -u)" -eq 0 ] && user=(-u "$TEST_USER")
	smtp-sink "${user[@]}" -v "$@" 100 >"$T/$name.out" 2>&1 &
	PEER_PIDS+=($!)
	local last=${*: -1}
	# Wait without connecting: tests count the sink's connections.
	case "$last" in
	unix:*)
		wait_for_socket "${last#unix:}" 20 &&
			chmod 777 "${last#unix:}" && return 0 ;;
	*)
		wait_for_listen "${last##*:}" 20 && return 0 ;;
	esac
	echo "# smtp-sink $name did not start" >&3
	return 1
}

# start_capture LISTEN_PORT TARGET_PORT: records client writes in $T/capture.
start_capture() {
	"$BATS_TEST_DIRNAME/helpers/tcp-capture" "$1" "$2" "$T/capture" &
	PEER_PIDS+=($!)
	wait_for_listen "$1" 20
}

# Hand deliver a job the way qmgr does; prints the result(s).
deliver_job() {
	"$BATS_TEST_DIRNAME/helpers/deliver-job" --run "$T/run" \
		--queue "$T/queue" "$@"
}

peers_setup() {
	suite_init
	suite_conf smtp_timeout "${1:-5s}"
	suite_conf smtp_connect_timeout "${2:-2s}"
	SECONDS=0
}

peers_teardown() {
	local status=0
	suite_stop || status=$?
	peers_stop
	postfix_peer_stop
	echo "# $BATS_TEST_DESCRIPTION: ${SECONDS}s" >&3
	return $status
}

pf_job() {
	run deliver_job --nexthop "$1" --from a@example.org --to ok@pf.test
	echo "$output"
}

last_qid() {
	sed -n 's/^queue_id=//p' <<<"$output" | tail -n1
}

# A private Postfix instance as an SMTP peer: its smtpd on 127.0.0.1:$PF_PORT
# with opportunistic STARTTLS (a fresh self-signed key), SMTPUTF8, a
# message_size_limit of PF_SIZE_LIMIT bytes, and one recipient it refuses
# (refused@pf.test); mail for pf.test is accepted and discarded. PF_EXTRA
# holds "key = value" lines that are added or replace a key, through
# postconf -e (a duplicate key makes every Postfix daemon log a warning
# to syslog, which blocks where no syslog daemon reads /dev/log). Config,
# queue and log (maillog) live in $T/postfix. "postfix start" needs root.
postfix_peer_start() {
	P="$T/postfix"
	PF_PORT=$(free_port)
	mkdir -p "$P/conf" "$P/queue" "$P/data"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pf.test \
		-keyout "$P/conf/key.pem" -out "$P/conf/cert.pem" 2>/dev/null
	cat > "$P/conf/master.cf" <<-CF
	127.0.0.1:$PF_PORT inet n - n - - smtpd
	cleanup   unix  n - n - 0 cleanup
	qmgr      unix  n - n 300 1 qmgr
	rewrite   unix  - - n - - trivial-rewrite
	bounce    unix  - - n - 0 bounce
	defer     unix  - - n - 0 bounce
	trace     unix  - - n - 0 bounce
	verify    unix  - - n - 1 verify
	proxymap  unix  - - n - - proxymap
	error     unix  - - n - - error
	retry     unix  - - n - - error
	discard   unix  - - n - - discard
	anvil     unix  - - n - 1 anvil
	scache    unix  - - n - 1 scache
	tlsmgr    unix  - - n 1000? 1 tlsmgr
	postlog   unix-dgram n - n - 1 postlogd
	CF
	# More services (PF_MASTER_EXTRA: master.cf lines), e.g. listeners.
	[ -z "${PF_MASTER_EXTRA:-}" ] ||
		printf '%s\n' "$PF_MASTER_EXTRA" >> "$P/conf/master.cf"
	cat > "$P/conf/main.cf" <<-CF
	compatibility_level = 3.6
	queue_directory = $P/queue
	data_directory = $P/data
	myhostname = pf.test
	mydestination =
	inet_interfaces = 127.0.0.1
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	syslog_name = postfix-deliver-test
	maillog_file = $P/maillog
	maillog_file_prefixes = $P
	relay_domains = pf.test
	relay_transport = discard:
	smtpd_recipient_restrictions = check_recipient_access inline:{ { refused@pf.test = 550 5.1.1 no such user } }, permit_mynetworks, reject
	smtpd_tls_security_level = may
	smtpd_tls_cert_file = $P/conf/cert.pem
	smtpd_tls_key_file = $P/conf/key.pem
	smtpd_tls_loglevel = 1
	smtputf8_enable = yes
	message_size_limit = ${PF_SIZE_LIMIT:-100000}
	alias_maps =
	alias_database =
	CF
	local line
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		postconf -c "$P/conf" -e "$line" || return 1
	done <<< "${PF_EXTRA:-}"
	chown postfix "$P/data"
	if ! postfix -c "$P/conf" start >/dev/null 2>&1; then
		sed 's/^/# /' "$P/maillog" >&3 2>/dev/null
		return 1
	fi
	wait_for_listen "$PF_PORT" 30
	# Its master's PID, so that it is stopped even when the temp dir
	# (and with it the config "postfix stop" needs) is gone first.
	PF_MASTER_PID=$(tr -d ' ' < "$P/queue/pid/master.pid" 2>/dev/null || true)
}

postfix_peer_stop() {
	if [ -n "${P:-}" ] && [ -d "$P/conf" ]; then
		postfix -c "$P/conf" stop >/dev/null 2>&1 || true
	elif [ -n "${PF_MASTER_PID:-}" ]; then
		# The temp dir went first: end the master we started by PID.
		kill -TERM "$PF_MASTER_PID" 2>/dev/null || true
	fi
	# "postfix stop" returns before its master is gone.
	if [ -n "${PF_MASTER_PID:-}" ]; then
		wait_until '! kill -0 "$PF_MASTER_PID" 2>/dev/null' 10 ||
			kill -KILL "$PF_MASTER_PID" 2>/dev/null || true
	fi
	P=
	PF_MASTER_PID=
}
