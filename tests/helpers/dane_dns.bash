# dane_dns.bash - a real DNSSEC chain for the DANE tests (tests/dane.bats):
# zones signed at test time by ldns-signzone (ECDSA P-256 keys: fast),
# served by nsd on a loopback port, and unbound on another loopback port
# validating them (stub zones to nsd, the zones' DS records as trust
# anchors, no root hints, RFC 6761's default "test." zone lifted). Needs
# suite.bash (free_dns_port) and peers.bash (PEER_PIDS: peers_stop kills
# nsd and unbound by PID).
#
#   dane_zone NAME KIND < RECORDS  a zone in $T/dns: KIND signed (its DS
#                                  is a trust anchor), unsigned (no
#                                  anchor covers it: insecure) or bogus
#                                  (signed, but the anchor is another
#                                  key's: every answer fails validation)
#   dane_dns_start                 sign, call the test's dane_tamper if
#                                  it has one (to edit $T/dns/*.served),
#                                  start nsd and unbound; sets
#                                  DNSSEC_PORT and the suite's dns_servers
#   dane_spki_sha256 CERT          hex SHA-256 of CERT's public key
#   dane_cert_sha256 CERT          hex SHA-256 of CERT (DER)

DANE_ZONES=()

dane_zone() {
	local name=$1 kind=$2
	mkdir -p "$T/dns"
	{
		printf '$ORIGIN %s.\n$TTL 300\n' "$name"
		printf '@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' \
			"$name" "$name"
		printf '@ IN NS ns.%s.\nns IN A 127.0.0.1\n' "$name"
		cat
	} > "$T/dns/$name.zone"
	DANE_ZONES+=("$name:$kind")
}

dane_spki_sha256() {
	openssl x509 -in "$1" -noout -pubkey |
		openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}

dane_cert_sha256() {
	openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1
}

# Sign each zone; trust anchors into $T/dns/anchors.
dane_sign_zones() {
	local d="$T/dns" z name kind key other
	: > "$d/anchors"
	for z in "${DANE_ZONES[@]}"; do
		name=${z%%:*} kind=${z#*:}
		case $kind in
		unsigned)
			cp "$d/$name.zone" "$d/$name.served" ;;
		signed|bogus)
			key=$(cd "$d" && ldns-keygen -a ECDSAP256SHA256 -k "$name") ||
				return 1
			(cd "$d" && ldns-signzone -f "$name.served" "$name.zone" \
				"$key") || return 1
			if [ "$kind" = bogus ]; then
				# A key the zone was never signed with.
				other=$(cd "$d" && ldns-keygen -a ECDSAP256SHA256 \
					-k "$name") || return 1
				cat "$d/$other.ds" >> "$d/anchors"
			else
				cat "$d/$key.ds" >> "$d/anchors"
			fi ;;
		esac
	done
}

dane_dns_start() {
	local d="$T/dns" z name nsd_port
	dane_sign_zones || return 1
	# A test may change signed data here (dane_tamper: bogus records).
	if declare -F dane_tamper >/dev/null; then
		dane_tamper || return 1
	fi
	nsd_port=$(free_dns_port)
	DNSSEC_PORT=$(free_dns_port)
	cat > "$d/nsd.conf" <<-EOF
	server:
	    ip-address: 127.0.0.1@$nsd_port
	    port: $nsd_port
	    username: ""
	    chroot: ""
	    zonesdir: "$d"
	    database: ""
	    zonelistfile: "$d/zone.list"
	    xfrdfile: "$d/xfrd.state"
	    pidfile: "$d/nsd.pid"
	    server-count: 1
	    verbosity: 1
	remote-control:
	    control-enable: no
	EOF
	cat > "$d/unbound.conf" <<-EOF
	server:
	    interface: 127.0.0.1
	    port: $DNSSEC_PORT
	    do-ip6: no
	    username: ""
	    chroot: ""
	    directory: "$d"
	    pidfile: "$d/unbound.pid"
	    use-syslog: no
	    verbosity: 1
	    val-log-level: 2
	    do-not-query-localhost: no
	    module-config: "validator iterator"
	    trust-anchor-file: "$d/anchors"
	    qname-minimisation: no
	    root-hints: ""
	    local-zone: "test." nodefault
	remote-control:
	    control-enable: no
	EOF
	for z in "${DANE_ZONES[@]}"; do
		name=${z%%:*}
		printf 'zone:\n    name: %s\n    zonefile: %s.served\n' \
			"$name" "$name" >> "$d/nsd.conf"
		printf 'stub-zone:\n    name: "%s"\n    stub-addr: 127.0.0.1@%s\n' \
			"$name" "$nsd_port" >> "$d/unbound.conf"
	done
	nsd -d -c "$d/nsd.conf" > "$d/nsd.out" 2>&1 &
	PEER_PIDS+=($!)
	unbound -d -c "$d/unbound.conf" > "$d/unbound.out" 2>&1 &
	PEER_PIDS+=($!)
	if ! wait_for_listen "$nsd_port" 20 ||
		! wait_for_listen "$DNSSEC_PORT" 20; then
		echo "# nsd or unbound did not start:" >&3
		sed 's/^/# /' "$d/nsd.out" "$d/unbound.out" >&3
		return 1
	fi
	export DNSSEC_PORT
	suite_conf dns_servers "127.0.0.1:$DNSSEC_PORT"
}
