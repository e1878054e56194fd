/*
 * master_limits.c - the open-file limit master sets at start for itself
 * and, by inheritance, every process it starts. screen holds one
 * descriptor per client it keeps waiting (screen_client_limit, 10,000
 * by default), far above the usual soft limit of 1024; the hard limit
 * is the administrator's (systemd's LimitNOFILE=, limits.conf), or
 * open_file_limit when master runs as root.
 *
 *   open_file_limit = 0   raise the soft limit to the hard limit
 *   open_file_limit = N   as root: set both to N (the kernel caps it at
 *                         fs.nr_open); not root: the soft limit to N,
 *                         or to the hard limit if N is above it
 *
 * Trusts: the config (root's). Never lowers a limit below what the
 * process was given.
 */
#include <errno.h>
#include <sys/resource.h>

#include "cfg.h"
#include "log.h"
#include "master.h"
#include "priv.h"

void master_limits_raise(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warning("getrlimit(RLIMIT_NOFILE): %m");
		return;
	}
	rlim_t want = rl.rlim_max;
	if (cfg.open_file_limit > 0)
		want = (rlim_t)cfg.open_file_limit;
	if (want <= rl.rlim_cur)
		return;
	struct rlimit next = { .rlim_cur = want, .rlim_max = rl.rlim_max };
	if (want > rl.rlim_max) {
		if (priv_is_root()) {
			next.rlim_max = want;
		} else {
			log_warning("open_file_limit %lld is above the hard "
			    "limit %llu, which only root may raise: using the "
			    "hard limit", cfg.open_file_limit,
			    (unsigned long long)rl.rlim_max);
			next.rlim_cur = rl.rlim_max;
		}
	}
	if (setrlimit(RLIMIT_NOFILE, &next) < 0) {
		/* Above fs.nr_open: the hard limit is as far as we go. */
		log_warning("setrlimit(RLIMIT_NOFILE, %llu): %m",
		    (unsigned long long)next.rlim_cur);
		next.rlim_cur = next.rlim_max = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &next) < 0)
			return;
	}
	log_debug("open files: limit %llu (hard %llu)",
	    (unsigned long long)next.rlim_cur,
	    (unsigned long long)next.rlim_max);
}
