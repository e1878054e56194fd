# dovecot.bash - Dovecot's LMTP server as a real peer for bats tests
# (tests/local.bats, tests/hosts_lmtp.bats). Needs suite.bash loaded
# first ($T, TEST_USER, free_port, wait_for_port).

# start_dovecot [PORT]: a private Dovecot with only its LMTP service, on
# 127.0.0.1:PORT (default: a free port), storing into Maildirs under
# $T/dovecot/mail/<user>/. Sets DOVE_PORT and DOVE_PID; the caller kills
# DOVE_PID (and may start it again on the same port).
start_dovecot() {
	local D="$T/dovecot"
	DOVE_PORT=${1:-$(free_port)}
	mkdir -p "$D/mail"
	local uid_user=$TEST_USER
	chown "$uid_user" "$D/mail"
	cat > "$D/dovecot.conf" <<-EOF
	base_dir = $D/run
	state_dir = $D/state
	log_path = $D/log
	protocols = lmtp
	ssl = no
	listen = 127.0.0.1
	default_internal_user = $( [ "$(id -u)" -eq 0 ] && echo dovecot || id -un)
	default_login_user = $( [ "$(id -u)" -eq 0 ] && echo dovenull || id -un)
	mail_location = maildir:$D/mail/%n
	passdb {
	  driver = static
	  args = nopassword=y
	}
	userdb {
	  driver = static
	  args = uid=$uid_user gid=$(id -gn "$uid_user") home=$D/mail/%n allow_all_users=yes
	}
	service lmtp {
	  inet_listener lmtp {
	    address = 127.0.0.1
	    port = $DOVE_PORT
	  }
	}
	service anvil {
	  chroot =
	}
	EOF
	/usr/sbin/dovecot -F -c "$D/dovecot.conf" >"$D/stdout" 2>&1 &
	DOVE_PID=$!
	wait_for_port "$DOVE_PORT" || { cat "$D/stdout" "$D/log" >&2; return 1; }
}
