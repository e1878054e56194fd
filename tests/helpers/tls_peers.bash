# tls_peers.bash - certificates and TLS peers for the outbound TLS tests
# (tests/tls_*.bats). Needs peers.bash (loaded before this file).
#
#   tls_test_pki            a test CA and certificates in $T/pki:
#                           good.pem   CA-signed, mx.tls.test relay.tls.test
#                           wrong.pem  CA-signed, wrong.example only
#                           self.pem   self-signed, mx.tls.test relay.tls.test
#                           (each with its key in NAME.key), ca.pem
#   tls_postfix_start       a private Postfix (peers.bash) with one smtpd
#                           listener per certificate: PF_GOOD, PF_WRONG,
#                           PF_SELF, and PF_PLAIN without STARTTLS
#   tls_fingerprint FILE    SHA-256 of a certificate, "AB:CD:..."

tls_test_pki() {
	local d="$T/pki" name
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 2 -subj "/CN=postern test CA" -keyout "$d/ca.key" \
		-out "$d/ca.pem" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign 2>/dev/null || return 1
	for name in good wrong; do
		local san="DNS:mx.tls.test,DNS:relay.tls.test"
		[ "$name" = wrong ] && san="DNS:wrong.example"
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=${san%%,*}" -keyout "$d/$name.key" \
			-out "$d/$name.csr" 2>/dev/null || return 1
		printf "subjectAltName=%s\n" "$san" > "$d/$name.ext"
		openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" \
			-CAkey "$d/ca.key" -CAcreateserial -days 2 \
			-extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null ||
			return 1
	done
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 2 -subj /CN=mx.tls.test -keyout "$d/self.key" \
		-out "$d/self.pem" \
		-addext subjectAltName=DNS:mx.tls.test,DNS:relay.tls.test \
		2>/dev/null || return 1
	chmod 644 "$d"/*.key
}

tls_fingerprint() {
	openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/^.*=//'
}

# Postfix as the peer (peers.bash's instance), with a listener per
# certificate in its master.cf (PF_MASTER_EXTRA).
tls_postfix_start() {
	PF_GOOD=$(free_port) PF_WRONG=$(free_port) PF_SELF=$(free_port)
	PF_PLAIN=$(free_port)
	local name port lines=""
	for name in good wrong self; do
		case $name in
		good) port=$PF_GOOD ;; wrong) port=$PF_WRONG ;; self) port=$PF_SELF ;;
		esac
		lines+="127.0.0.1:$port inet n - n - - smtpd -o smtpd_tls_cert_file=$T/pki/$name.pem -o smtpd_tls_key_file=$T/pki/$name.key"$'\n'
	done
	lines+="127.0.0.1:$PF_PLAIN inet n - n - - smtpd -o smtpd_tls_security_level=none"
	PF_MASTER_EXTRA=$lines postfix_peer_start || return 1
	for port in "$PF_GOOD" "$PF_WRONG" "$PF_SELF" "$PF_PLAIN"; do
		wait_for_listen "$port" 10 || return 1
	done
}
