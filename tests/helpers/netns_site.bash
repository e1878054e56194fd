# netns_site.bash - a mail site in network namespaces, for the site
# tests (tests/hosts_site*.bats, issue 19).
#
#   load helpers/suite
#   load helpers/netns_site
#   setup()    { site_netns_init; }   # skips without root or ip netns
#   teardown() { site_cleanup; }
#
# Every host is a namespace "$NS-NAME" with lo and one veth (eth0) into
# a bridge br0 that lives in the namespace "$NS-lan" (site_lan). The
# addresses are from the documentation range 192.0.2.0/24 and no
# namespace has a default route: no packet leaves the test's namespaces.
# Each postern instance lives in $T/NAME (config, queue, run, mail, log).
# Every process the test starts goes into SITE_PIDS and every namespace
# into SITE_NS; site_cleanup stops the first by PID and removes the
# second.

# site_netns_init: skip without root or ip netns, else make the lan
# namespace and the suite's temp dir.
site_netns_init() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"
	command -v ip >/dev/null || skip "ip (iproute2) is not installed"
	NS="pst$$"
	if ! ip netns add "$NS-lan" 2>/dev/null; then
		skip "ip netns is not allowed here"
	fi
	SITE_NS=("$NS-lan")
	SITE_PIDS=()
	suite_init
}

# site_cleanup: stop every process of SITE_PIDS (TERM, then KILL of its
# whole tree), remove the namespaces and $T, print the file's time. In a
# sanitizer build it fails when an instance's log ($T/NAME/log) holds a
# report, and keeps $T; a grandchild (smtpd's door) may write its report
# after master is gone, so the whole tree is given time to exit first.
site_cleanup() {
	local pid ns tree=() status=0
	for pid in "${SITE_PIDS[@]}"; do
		tree+=($(tree_pids "$pid"))
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SITE_PIDS[@]}"; do
		if ! wait_for_exit "$pid" 15 2>/dev/null; then
			kill -KILL $(tree_pids "$pid") 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	for pid in "${tree[@]}"; do
		wait_for_exit "$pid" 10 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	for ns in "${SITE_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	sanitizer_check_instances "$T" || status=1
	if [ -n "${KEEP_TEST_DIR:-}" ] || [ $status -ne 0 ]; then
		echo "# kept $T" >&3
	else
		rm -rf "$T"
	fi
	echo "# ${BATS_TEST_FILENAME##*/}: ${SECONDS}s" >&3
	return $status
}

# on NAME COMMAND...: run COMMAND in host NAME's namespace.
on() {
	local name=$1
	shift
	ip netns exec "$NS-$name" "$@"
}

# on_bg NAME COMMAND... &: the same in the background, so that $! is
# COMMAND itself (ip netns exec execs it) and bats's fd 3 stays closed
# to it (bats waits for every holder of fd 3).
on_bg() {
	local name=$1
	shift
	exec 3>&-
	exec ip netns exec "$NS-$name" "$@"
}

# site_lan: the bridge the hosts plug into.
site_lan() {
	ip netns exec "$NS-lan" ip link add br0 type bridge
	ip netns exec "$NS-lan" ip link set br0 up
}

# site_host NAME ADDRESS: a namespace with lo and eth0=ADDRESS/24 on
# the bridge, and no route but the /24.
site_host() {
	local name=$1 addr=$2
	ip netns add "$NS-$name"
	SITE_NS+=("$NS-$name")
	ip netns exec "$NS-lan" ip link add "$name" type veth peer name eth0 \
		netns "$NS-$name"
	ip netns exec "$NS-lan" ip link set "$name" master br0 up
	on "$name" ip link set lo up
	on "$name" ip addr add "$addr/24" dev eth0
	on "$name" ip link set eth0 up
}

# site_postern NAME HOSTNAME [KEY=VALUE...]: a postern instance's
# config in $T/NAME.
site_postern() {
	local name=$1 host=$2 kv
	shift 2
	local D="$T/$name"
	mkdir -p "$D/mail"
	chown "$TEST_USER" "$D/mail"
	instance_conf "$D" "$host"
	cat >> "$D/conf/postern.conf" <<-CONF
	mailbox_base = $D/mail
	lmtp_listen = unix:$D/run/lmtp
	lmtp_destination = unix:$D/run/lmtp
	submission_listen =
	service_throttle_time = 2s
	shutdown_timeout = 10s
	minimal_backoff = 1s
	maximal_backoff = 2s
	queue_run_delay = 1s
	process_min_idle = 1
	smtpd_processes = 20
	smtp_connect_timeout = 2s
	smtp_timeout = 10s
	CONF
	local f="$D/conf/postern.conf"
	for kv in "$@"; do
		grep -v "^${kv%%=*} =" "$f" > "$f.new" || true
		printf '%s = %s\n' "${kv%%=*}" "${kv#*=}" >> "$f.new"
		mv "$f.new" "$f"
	done
}

# site_start NAME: start NAME's master in its namespace; sets NAME_PID.
site_start() {
	local name=$1
	# A restart writes a new log: the old one says "started" too.
	if [ -f "$T/$name/log" ]; then
		mv "$T/$name/log" "$T/$name/log.before"
	fi
	on_bg "$name" "$POSTERN" -c "$T/$name/conf" start -f >>"$T/$name/log" 2>&1 &
	local pid=$!
	SITE_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
	wait_for_log 'daemon started' 20 "$T/$name/log"
}

# site_port_open NAME ADDR PORT: does ADDR:PORT take a connection, seen
# from host NAME?
site_port_open() {
	on "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}

# site_queue_count NAME: the messages in NAME's queue (not recycle/,
# not tls/ with deliver's MTA-STS cache and TLS-RPT store, not the
# temporary dot files).
site_queue_count() {
	find "$T/$1/queue" -path "$T/$1/queue/recycle" -prune \
		-o -path "$T/$1/queue/tls" -prune \
		-o -type f ! -name '.*' -print 2>/dev/null | wc -l
}

# tree_pids PID: in suite.bash.
