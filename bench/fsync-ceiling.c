/*
 * fsync-ceiling - how many durable queue writes per second this disk allows.
 *
 * Each writer thread repeats the cycle every durable mail queue performs to
 * accept one message (doc/architecture.md): create a file under a unique
 * temporary name (O_EXCL, 0600), write the message, rename it into
 * incoming/, fsync the file, fsync incoming/ (mail/queue.h). -o early
 * (postern's order before the first performance pass) and -o postfix
 * measure other orders of the same steps (see enum cycle_order), for
 * comparison only. The file is then unlinked (without an
 * fsync) so that the directory stays the size of a queue in steady state.
 * The rate of that loop, with 1 and with 20 writers, is the physical ceiling
 * of any acceptance rate on this disk: no MTA that keeps its promise can
 * acknowledge mail faster.
 *
 * Trusts: nothing but its arguments; works only inside the directory it is
 * given (creates tmp/ and incoming/ there and removes what it wrote).
 *
 * Output: one line of key=value pairs, for bench/run to parse:
 *   writers=1 seconds=3.00 cycles=900 rate=300.0 p50_ms=3.20 p99_ms=5.10
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_stats.h"

#define MAX_WRITERS 256
#define MAX_SAMPLES_PER_WRITER 200000

struct writer {
	pthread_t thread;
	int id;
	uint64_t cycles;
	double *lat_ms;		/* one entry per cycle, up to the cap */
	size_t nlat;
	int error;		/* errno of the first failure, 0 if none */
	const char *what;	/* which call failed */
};

static const char *base_dir;
static size_t msg_size = 4096;
static double run_seconds = 3.0;
static char *payload;
static int incoming_fd = -1;
static volatile bool stop_flag;

static void usage(void)
{
	fprintf(stderr, "usage: fsync-ceiling -d DIR [-w writers] [-t seconds] [-s bytes]\n"
	    "    [-o postern|early|postfix]\n");
	exit(2);
}

/* Writes all of buf, retrying short writes; -1 with errno on failure. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The order of the durable steps. postern's (mail/queue.h) renames the
 * complete file first and then fsyncs it and the directory: on ext4 with
 * a journal one commit carries the data and the new name; without one,
 * fsync of a new file writes its directory too (ext4_sync_parent), so
 * the directory's fsync has nothing left to write. "early" fsyncs the
 * file before the rename (postern's order until the first performance
 * pass). Postfix's cleanup renames first and then fsyncs the file only.
 */
enum cycle_order {
	ORDER_POSTERN,		/* write, rename, fsync file, fsync dir */
	ORDER_EARLY,		/* write, fsync file, rename, fsync dir */
	ORDER_POSTFIX,		/* write, rename, fsync file */
};
static enum cycle_order order = ORDER_POSTERN;

static int do_fsync(struct writer *w, int fd, const char *what)
{
	if (fsync(fd) < 0) {
		w->what = what;
		return -1;
	}
	return 0;
}

static int do_rename(struct writer *w, const char *from, const char *to)
{
	if (rename(from, to) < 0) {
		w->what = "rename";
		return -1;
	}
	return 0;
}

/* One queue-acceptance cycle; on failure records which call failed. */
static int one_cycle(struct writer *w, uint64_t seq)
{
	char tmp[4096], final[4096];
	int fd, rc;

	snprintf(tmp, sizeof(tmp), "%s/tmp/w%d.%llu", base_dir, w->id,
	    (unsigned long long)seq);
	snprintf(final, sizeof(final), "%s/incoming/w%d.%llu", base_dir, w->id,
	    (unsigned long long)seq);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		w->what = "open";
		return -1;
	}
	if (write_all(fd, payload, msg_size) < 0) {
		w->what = "write";
		close(fd);
		return -1;
	}
	switch (order) {
	case ORDER_POSTERN:
		rc = do_rename(w, tmp, final) || do_fsync(w, fd, "fsync(file)") ||
		    do_fsync(w, incoming_fd, "fsync(dir)");
		break;
	case ORDER_EARLY:
		rc = do_fsync(w, fd, "fsync(file)") || do_rename(w, tmp, final) ||
		    do_fsync(w, incoming_fd, "fsync(dir)");
		break;
	default:
		rc = do_rename(w, tmp, final) || do_fsync(w, fd, "fsync(file)");
		break;
	}
	if (close(fd) < 0 && rc == 0) {
		w->what = "close";
		rc = -1;
	}
	if (rc != 0)
		return -1;
	if (unlink(final) < 0) {
		w->what = "unlink";
		return -1;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seq = 0;

	while (!stop_flag) {
		double t0 = now_s();

		if (one_cycle(w, seq++) < 0) {
			w->error = errno;
			break;
		}
		if (w->nlat < MAX_SAMPLES_PER_WRITER)
			w->lat_ms[w->nlat++] = (now_s() - t0) * 1000.0;
		w->cycles++;
	}
	return NULL;
}

static void make_dir(const char *parent, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", parent, name);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "fsync-ceiling: mkdir %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct writer writers[MAX_WRITERS];
	int nwriters = 1, opt, failed = 0;
	double t0, elapsed, *all;
	uint64_t total = 0;
	size_t nall = 0;
	char path[4096];

	while ((opt = getopt(argc, argv, "d:w:t:s:o:")) != -1) {
		switch (opt) {
		case 'o':
			if (strcmp(optarg, "postern") == 0)
				order = ORDER_POSTERN;
			else if (strcmp(optarg, "early") == 0)
				order = ORDER_EARLY;
			else if (strcmp(optarg, "postfix") == 0)
				order = ORDER_POSTFIX;
			else
				usage();
			break;
		case 'd':
			base_dir = optarg;
			break;
		case 'w':
			nwriters = atoi(optarg);
			break;
		case 't':
			run_seconds = atof(optarg);
			break;
		case 's':
			msg_size = (size_t)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (base_dir == NULL || nwriters < 1 || nwriters > MAX_WRITERS ||
	    run_seconds <= 0 || msg_size == 0 || msg_size > 64 * 1024 * 1024)
		usage();

	make_dir(base_dir, "tmp");
	make_dir(base_dir, "incoming");
	snprintf(path, sizeof(path), "%s/incoming", base_dir);
	incoming_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (incoming_fd < 0) {
		fprintf(stderr, "fsync-ceiling: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	payload = malloc(msg_size);
	if (payload == NULL) {
		fprintf(stderr, "fsync-ceiling: out of memory\n");
		return 1;
	}
	memset(payload, 'x', msg_size);

	for (int i = 0; i < nwriters; i++) {
		writers[i].id = i;
		writers[i].lat_ms = calloc(MAX_SAMPLES_PER_WRITER, sizeof(double));
		if (writers[i].lat_ms == NULL) {
			fprintf(stderr, "fsync-ceiling: out of memory\n");
			return 1;
		}
	}
	t0 = now_s();
	for (int i = 0; i < nwriters; i++) {
		if (pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]) != 0) {
			fprintf(stderr, "fsync-ceiling: pthread_create failed\n");
			return 1;
		}
	}
	while (now_s() - t0 < run_seconds) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	stop_flag = true;
	for (int i = 0; i < nwriters; i++)
		pthread_join(writers[i].thread, NULL);
	elapsed = now_s() - t0;

	for (int i = 0; i < nwriters; i++) {
		total += writers[i].cycles;
		nall += writers[i].nlat;
		if (writers[i].error != 0) {
			fprintf(stderr, "fsync-ceiling: writer %d: %s: %s\n", i,
			    writers[i].what, strerror(writers[i].error));
			failed = 1;
		}
	}
	all = calloc(nall ? nall : 1, sizeof(double));
	if (all == NULL) {
		fprintf(stderr, "fsync-ceiling: out of memory\n");
		return 1;
	}
	nall = 0;
	for (int i = 0; i < nwriters; i++) {
		memcpy(all + nall, writers[i].lat_ms, writers[i].nlat * sizeof(double));
		nall += writers[i].nlat;
	}
	sort_samples(all, nall);

	/* Leave the directory as we found it (the files are already gone). */
	snprintf(path, sizeof(path), "%s/incoming", base_dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/tmp", base_dir);
	rmdir(path);

	printf("writers=%d seconds=%.2f cycles=%llu rate=%.1f p50_ms=%.2f p99_ms=%.2f\n",
	    nwriters, elapsed, (unsigned long long)total, (double)total / elapsed,
	    percentile(all, nall, 50.0), percentile(all, nall, 99.0));
	return failed;
}
