# dovecot.bash - Dovecot's LMTP server as a real peer for bats tests
# (tests/local.bats, tests/hosts_lmtp.bats, tests/hosts_site.bats). Needs suite.bash loaded
# first ($T, TEST_USER, free_port, wait_for_port).

# dovecot_conf DIR ADDRESS PORT: DIR/dovecot.conf, a Dovecot with only
# its LMTP service, on ADDRESS:PORT, storing into Maildirs under
# DIR/mail/<user>/ as TEST_USER.
dovecot_conf() {
	local D=$1
	mkdir -p "$D/mail"
	chown "$TEST_USER" "$D/mail"
	cat > "$D/dovecot.conf" <<-EOF
	base_dir = $D/run
	state_dir = $D/state
	log_path = $D/log
	protocols = lmtp
	ssl = no
	listen = $2
	default_internal_user = $( [ "$(id -u)" -eq 0 ] && echo dovecot || id -un)
	default_login_user = $( [ "$(id -u)" -eq 0 ] && echo dovenull || id -un)
	mail_location = maildir:$D/mail/%n
	passdb {
	  driver = static
	  args = nopassword=y
	}
	userdb {
	  driver = static
	  args = uid=$TEST_USER gid=$(id -gn "$TEST_USER") home=$D/mail/%n allow_all_users=yes
	}
	service lmtp {
	  inet_listener lmtp {
	    address = $2
	    port = $3
	  }
	}
	service anvil {
	  chroot =
	}
	EOF
}

# start_dovecot [PORT]: a private Dovecot with only its LMTP service, on
# 127.0.0.1:PORT (default: a free port), storing into Maildirs under
# $T/dovecot/mail/<user>/. Sets DOVE_PORT and DOVE_PID; the caller kills
# DOVE_PID (and may start it again on the same port).
start_dovecot() {
	local D="$T/dovecot"
	DOVE_PORT=${1:-$(free_port)}
	dovecot_conf "$D" 127.0.0.1 "$DOVE_PORT"
	/usr/sbin/dovecot -F -c "$D/dovecot.conf" >"$D/stdout" 2>&1 &
	DOVE_PID=$!
	wait_for_port "$DOVE_PORT" || { cat "$D/stdout" "$D/log" >&2; return 1; }
}
