/*
 * Unit tests for mail/queue_*.c: IDs, paths, directories, writing and
 * reading queue files, in-place updates, trailer records, and the
 * reader's behaviour on damaged files. Works in a fresh temp directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"
#include "unit.h"

static char qdir[256];

static void setup_queue(void)
{
	char err[256];
	snprintf(qdir, sizeof(qdir), "%s/postern-test-queue.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(qdir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	if (!queue_dirs_create(qdir, geteuid(), getegid(), getegid(), err,
	    sizeof(err))) {
		printf("# queue_dirs_create: %s\n", err);
		exit(2);
	}
}

static void remove_tree(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", path);
}

/* Names in a queue subdirectory (temporary ones included). */
static int count_entries(const char *subdir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", qdir, subdir);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Unlink every name in a queue subdirectory (none is a directory). */
static void empty_dir(const char *subdir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", qdir, subdir);
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

static int open_queue_file(const char *subdir, const char *id, int flags)
{
	char path[512];
	queue_path(path, sizeof(path), qdir, subdir, id);
	return open(path, flags);
}

/* Write env with content into subdir; returns the ID's validity. */
static bool write_message(const char *subdir, struct queue_envelope *env,
    const char *content, size_t len)
{
	char err[256];
	struct queue_writer *w = queue_writer_open(qdir, subdir, env, err,
	    sizeof(err));
	if (w == NULL) {
		printf("# queue_writer_open: %s\n", err);
		return false;
	}
	if (len && !queue_writer_write(w, content, len)) {
		printf("# queue_writer_write failed\n");
		queue_writer_abort(w);
		return false;
	}
	if (!queue_writer_commit(w, err, sizeof(err))) {
		printf("# queue_writer_commit: %s\n", err);
		return false;
	}
	return true;
}

static enum queue_read_result read_message(const char *subdir,
    const char *id, struct queue_envelope *env, char *err, size_t errsize)
{
	int fd = open_queue_file(subdir, id, O_RDONLY);
	if (fd < 0) {
		snprintf(err, errsize, "open: %s", strerror(errno));
		return QUEUE_READ_ERROR;
	}
	enum queue_read_result r = queue_read(fd, env, err, errsize);
	close(fd);
	return r;
}

/* Compare the fields a writer sets with what the reader found. */
static void check_same_envelope(const struct queue_envelope *a,
    const struct queue_envelope *b)
{
	CHECK_STR(a->id, b->id);
	CHECK_INT(a->arrival_sec, b->arrival_sec);
	CHECK_INT(a->arrival_usec, b->arrival_usec);
	CHECK_STR(a->sender, b->sender);
	CHECK_INT(a->body, b->body);
	CHECK_INT(a->smtputf8, b->smtputf8);
	CHECK_INT(a->requiretls, b->requiretls);
	CHECK_STR(a->envid, b->envid);
	CHECK_INT(a->ret, b->ret);
	CHECK_INT(a->kind, b->kind);
	CHECK_INT(a->delay_warned, b->delay_warned);
	CHECK_INT(a->delay_warned_offset, b->delay_warned_offset);
	CHECK_INT(a->nattrs, b->nattrs);
	for (size_t i = 0; i < a->nattrs && i < b->nattrs; i++) {
		CHECK_STR(a->attrs[i].name, b->attrs[i].name);
		CHECK_STR(a->attrs[i].value, b->attrs[i].value);
	}
	CHECK_INT(a->nrcpts, b->nrcpts);
	int bad = 0;
	for (size_t i = 0; i < a->nrcpts && i < b->nrcpts && bad < 3; i++) {
		const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		if (strcmp(x->address, y->address) || x->notify != y->notify ||
		    x->status != y->status || x->parent != y->parent ||
		    x->status_offset != y->status_offset ||
		    (x->orcpt == NULL) != (y->orcpt == NULL) ||
		    (x->orcpt && strcmp(x->orcpt, y->orcpt))) {
			printf("# recipient %zu differs: %s / %s\n", i,
			    x->address, y->address);
			bad++;
		}
	}
	CHECK(bad == 0);
	CHECK_INT(a->content_offset, b->content_offset);
	CHECK_INT(a->content_length, b->content_length);
	CHECK_INT(a->trailer_offset, b->trailer_offset);
}

/* ---- round trips, table-driven ---- */

struct roundtrip_case {
	const char *name;
	const char *sender;
	enum queue_body body;
	bool smtputf8;
	bool requiretls;
	const char *envid;
	enum queue_ret ret;
	enum queue_kind kind;
	bool delay_warned;
	const char *attrs[6];	/* name, value pairs */
	const char *rcpts[4];
	unsigned notify[4];
	const char *orcpts[4];
	size_t extra_rcpts;	/* generated recipients */
	size_t content_size;	/* generated content, 0: content below */
	const char *content;
};

static const struct roundtrip_case roundtrip_cases[] = {
	{ .name = "null sender, no recipients, empty content",
	  .sender = "" },
	{ .name = "every record type",
	  .sender = "alice@example.org", .body = QUEUE_BODY_8BITMIME,
	  .smtputf8 = true, .requiretls = true, .envid = "QQ314159",
	  .ret = QUEUE_RET_HDRS,
	  .kind = QUEUE_KIND_BOUNCE, .delay_warned = true,
	  .attrs = { "client_name", "mx.example.org", "client_addr",
	      "192.0.2.7", "helo", "" },
	  .rcpts = { "bob@example.net", "carol@example.com", "postmaster" },
	  .notify = { QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE |
	      QUEUE_NOTIFY_DELAY, QUEUE_NOTIFY_NEVER, 0 },
	  .orcpts = { "rfc822;bob@example.net", NULL, "utf-8;x@y" },
	  .content = "Subject: hi\r\n\r\nbody\r\n.\r\n..dots\r\n" },
	{ .name = "UTF-8 addresses",
	  .sender = "j\xc3\xb6rg@b\xc3\xbc" "cher.example", .smtputf8 = true,
	  .rcpts = { "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example",
	      "\"quoted local part\"@example.org" },
	  .content = "Subject: =?utf-8?q?x?=\r\n\r\n\xc3\xa9t\xc3\xa9\r\n" },
	{ .name = "BINARYMIME, DELAY kind, RET FULL",
	  .sender = "x@y", .body = QUEUE_BODY_BINARYMIME, .ret = QUEUE_RET_FULL,
	  .kind = QUEUE_KIND_DELAY, .rcpts = { "a@b" },
	  .content = "bare\nLF and NUL are data here" },
	{ .name = "10000 recipients", .sender = "list@example.org",
	  .extra_rcpts = 10000, .content = "x\r\n" },
	{ .name = "20 MB content", .sender = "big@example.org",
	  .rcpts = { "r@example.net" }, .content_size = 20 * 1024 * 1024 },
};

/* Deterministic bytes, including LF, CR, NUL and high bytes. */
static void fill_content(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)(seed >> 16);
	}
}

static void test_roundtrip(void)
{
	for (size_t c = 0; c < sizeof(roundtrip_cases) / sizeof(roundtrip_cases[0]); c++) {
		const struct roundtrip_case *tc = &roundtrip_cases[c];
		struct queue_envelope env, got;
		char err[256];
		int failed_before = unit_current_failed;

		queue_envelope_init(&env);
		env.sender = xstrdup(tc->sender);
		env.body = tc->body;
		env.smtputf8 = tc->smtputf8;
		env.requiretls = tc->requiretls;
		env.envid = tc->envid ? xstrdup(tc->envid) : NULL;
		env.ret = tc->ret;
		env.kind = tc->kind;
		env.delay_warned = tc->delay_warned;
		for (int i = 0; i < 6 && tc->attrs[i]; i += 2)
			queue_envelope_set_attr(&env, tc->attrs[i],
			    tc->attrs[i + 1]);
		for (int i = 0; i < 4 && tc->rcpts[i]; i++)
			CHECK_INT(queue_envelope_add_rcpt(&env, tc->rcpts[i],
			    tc->notify[i], tc->orcpts[i]), i);
		for (size_t i = 0; i < tc->extra_rcpts; i++) {
			char a[64];
			snprintf(a, sizeof(a), "user%zu@d%zu.example", i, i % 7);
			queue_envelope_add_rcpt(&env, a, i % 2 ?
			    QUEUE_NOTIFY_FAILURE : 0, i % 3 ? NULL :
			    "rfc822;orig@example.org");
		}
		size_t len = tc->content_size ? tc->content_size :
		    tc->content ? strlen(tc->content) : 0;
		char *content = xmalloc(len + 1);
		if (tc->content_size)
			fill_content(content, len, (unsigned)c);
		else if (len)
			memcpy(content, tc->content, len);

		/* Write in uneven pieces so that buffer edges are crossed. */
		struct queue_writer *w = queue_writer_open(qdir, QUEUE_INCOMING,
		    &env, err, sizeof(err));
		CHECK(w != NULL);
		if (w == NULL) {
			printf("# %s: %s\n", tc->name, err);
			free(content);
			queue_envelope_free(&env);
			continue;
		}
		CHECK(queue_id_valid(env.id));
		size_t off = 0, step = 1;
		while (off < len) {
			size_t n = len - off < step ? len - off : step;
			CHECK(queue_writer_write(w, content + off, n));
			off += n;
			step = step * 3 + 7;
			if (step > 300000)
				step = 1000;
		}
		CHECK_INT(queue_writer_content_length(w), len);
		CHECK(queue_writer_commit(w, err, sizeof(err)));

		queue_envelope_init(&got);
		CHECK_INT(read_message(QUEUE_INCOMING, env.id, &got, err,
		    sizeof(err)), QUEUE_READ_OK);
		check_same_envelope(&env, &got);
		CHECK_INT(got.content_length, len);

		/* The content is exactly what was written. */
		char *back = xmalloc(len + 1);
		int fd = open_queue_file(QUEUE_INCOMING, env.id, O_RDONLY);
		CHECK(fd >= 0);
		CHECK(pread(fd, back, len, got.content_offset) == (ssize_t)len);
		CHECK(len == 0 || memcmp(back, content, len) == 0);
		/* After it only the writer's C record, repeating the length. */
		struct stat st;
		char end[40], want_end[40];
		int want_len = snprintf(want_end, sizeof(want_end), "C %zu\n",
		    len);
		CHECK(fstat(fd, &st) == 0);
		CHECK_INT(st.st_size, got.trailer_offset + want_len);
		CHECK(pread(fd, end, (size_t)want_len, got.trailer_offset) ==
		    want_len && memcmp(end, want_end, (size_t)want_len) == 0);
		CHECK_INT(st.st_mode & 07777, 0600);
		close(fd);
		free(back);
		free(content);
		queue_envelope_free(&got);
		queue_envelope_free(&env);
		if (unit_current_failed != failed_before)
			printf("# case failed: %s\n", tc->name);
	}
}

/* A small message with three recipients, used by several tests. */
static void make_three(struct queue_envelope *env)
{
	queue_envelope_init(env);
	env->sender = xstrdup("s@example.org");
	queue_envelope_add_rcpt(env, "a@example.net", 0, NULL);
	queue_envelope_add_rcpt(env, "list@example.org", QUEUE_NOTIFY_SUCCESS,
	    "rfc822;list@example.org");
	queue_envelope_add_rcpt(env, "c@example.com", 0, NULL);
	CHECK(write_message(QUEUE_INCOMING, env, "Subject: t\r\n\r\nhi\r\n", 19));
}

static void test_status_updates_persist(void)
{
	struct queue_envelope env, got;
	char err[256];

	make_three(&env);
	int fd = open_queue_file(QUEUE_INCOMING, env.id, O_RDWR);
	CHECK(fd >= 0);
	/* Offsets from the writer and from the reader agree. */
	queue_envelope_init(&got);
	CHECK_INT(queue_read(fd, &got, err, sizeof(err)), QUEUE_READ_OK);
	check_same_envelope(&env, &got);

	CHECK(queue_set_rcpt_status(fd, &got, 0, QUEUE_RCPT_SENT));
	CHECK(queue_set_rcpt_status(fd, &got, 2, QUEUE_RCPT_FAILED));
	CHECK(queue_set_delay_warned(fd, &got));
	CHECK(!queue_set_rcpt_status(fd, &got, 3, QUEUE_RCPT_SENT));
	CHECK(!queue_set_rcpt_status(fd, &got, 1, 'Q'));
	queue_envelope_free(&got);

	queue_envelope_init(&got);
	CHECK_INT(queue_read(fd, &got, err, sizeof(err)), QUEUE_READ_OK);
	CHECK_INT(got.rcpts[0].status, QUEUE_RCPT_SENT);
	CHECK_INT(got.rcpts[1].status, QUEUE_RCPT_PENDING);
	CHECK_INT(got.rcpts[2].status, QUEUE_RCPT_FAILED);
	CHECK(got.delay_warned);
	/* Status changes do not move anything else. */
	CHECK_INT(got.content_offset, env.content_offset);
	CHECK_INT(got.content_length, 19);
	close(fd);
	queue_envelope_free(&got);
	queue_envelope_free(&env);
}

static void test_expansion_and_reasons(void)
{
	struct queue_envelope env, got;
	char err[256];
	const char *children[] = { "x@example.net", "y z\"@example.net",
	    "\xc3\xbc@example.de" };

	make_three(&env);
	int fd = open_queue_file(QUEUE_INCOMING, env.id, O_RDWR);
	CHECK(fd >= 0);
	queue_envelope_init(&got);
	CHECK_INT(queue_read(fd, &got, err, sizeof(err)), QUEUE_READ_OK);

	CHECK(queue_append_reason(fd, &got, 0, "4.4.1",
	    "connect to mx: Connection refused"));
	CHECK(queue_append_expansion(fd, &got, 1, children, 3));
	CHECK(queue_set_rcpt_status(fd, &got, 1, QUEUE_RCPT_EXPANDED));
	CHECK_INT(got.nrcpts, 6);
	CHECK(queue_set_rcpt_status(fd, &got, 4, QUEUE_RCPT_SENT));
	/* A second-level expansion of an X recipient. */
	const char *grandchild[] = { "deep@example.net" };
	CHECK(queue_append_expansion(fd, &got, 5, grandchild, 1));
	/* The last reason wins; CR and LF become spaces. */
	CHECK(queue_append_reason(fd, &got, 0, "4.7.0",
	    "450 4.7.0 greylisted\r\nsecond line"));
	CHECK(queue_append_reason(fd, &got, 3, "4.2.2", ""));
	/* Rejected: unknown recipient, bad DSN, CR in an address. */
	CHECK(!queue_append_reason(fd, &got, 7, "4.0.0", "x"));
	CHECK(!queue_append_reason(fd, &got, 0, "4.0", "x"));
	CHECK(!queue_append_reason(fd, &got, 0, "3.1.1", "x"));
	const char *badaddr[] = { "a\r\nZ 0 4.0.0 injected" };
	CHECK(!queue_append_expansion(fd, &got, 0, badaddr, 1));
	CHECK(!queue_append_expansion(fd, &got, 99, children, 1));
	CHECK_STR(got.rcpts[0].last_reason, "450 4.7.0 greylisted  second line");

	struct queue_envelope again;
	queue_envelope_init(&again);
	CHECK_INT(queue_read(fd, &again, err, sizeof(err)), QUEUE_READ_OK);
	check_same_envelope(&got, &again);
	CHECK_INT(again.nrcpts, 7);
	CHECK_INT(again.rcpts[1].status, QUEUE_RCPT_EXPANDED);
	CHECK_INT(again.rcpts[3].parent, 1);
	CHECK_INT(again.rcpts[3].status, QUEUE_RCPT_PENDING);
	CHECK_INT(again.rcpts[4].status, QUEUE_RCPT_SENT);
	CHECK_STR(again.rcpts[4].address, "y z\"@example.net");
	CHECK_STR(again.rcpts[5].address, "\xc3\xbc@example.de");
	CHECK_INT(again.rcpts[6].parent, 5);
	/* Children inherit NOTIFY and ORCPT from their parent. */
	CHECK_INT(again.rcpts[3].notify, QUEUE_NOTIFY_SUCCESS);
	CHECK_STR(again.rcpts[3].orcpt, "rfc822;list@example.org");
	CHECK_STR(again.rcpts[0].last_dsn, "4.7.0");
	CHECK_STR(again.rcpts[0].last_reason, "450 4.7.0 greylisted  second line");
	CHECK_STR(again.rcpts[3].last_dsn, "4.2.2");
	CHECK_STR(again.rcpts[3].last_reason, "");
	CHECK(again.rcpts[2].last_dsn == NULL);
	/* Content is untouched by the trailer. */
	char buf[32];
	CHECK(pread(fd, buf, 19, again.content_offset) == 19);
	CHECK(memcmp(buf, "Subject: t\r\n\r\nhi\r\n", 19) == 0);
	close(fd);
	queue_envelope_free(&again);
	queue_envelope_free(&got);
	queue_envelope_free(&env);
}

/* ---- queue IDs ---- */

/* New IDs are base 52: the letters and digits without vowels. */
static unsigned long long b62_decode(const char *s, int n)
{
	static const char digits[] =
	    "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
	unsigned long long v = 0;
	for (int i = 0; i < n; i++)
		v = v * 52 + (unsigned long long)(strchr(digits, s[i]) - digits);
	return v;
}

static void test_ids_unique_sorted(void)
{
	char prev[QUEUE_ID_SIZE] = "", id[QUEUE_ID_SIZE];
	int bad = 0;
	struct timeval before, after;

	gettimeofday(&before, NULL);
	for (int i = 0; i < 100000; i++) {
		queue_id_new(id);
		if (!queue_id_valid(id) || strcmp(prev, id) >= 0) {
			if (bad++ < 3)
				printf("# %s after %s\n", id, prev);
		}
		memcpy(prev, id, sizeof(id));
	}
	gettimeofday(&after, NULL);
	CHECK_INT(bad, 0);
	/* The ID carries the time and the process ID. */
	queue_id_new(id);
	unsigned long long sec = b62_decode(id, 6), usec = b62_decode(id + 6, 4);
	CHECK((long long)sec >= before.tv_sec && (long long)sec <= after.tv_sec + 1);
	CHECK(usec < 1000000);
	CHECK_INT(b62_decode(id + 10, 4), getpid());
	CHECK(strpbrk(id, "aeiouAEIOU") == NULL);

	CHECK(queue_id_valid("0123456789ABCz"));
	CHECK(!queue_id_valid("0123456789ABC"));
	CHECK(!queue_id_valid("0123456789ABCDE"));
	CHECK(!queue_id_valid("0123456789ABC-"));
	CHECK(!queue_id_valid("../../etc/pass"));
	CHECK(!queue_id_valid(""));
	CHECK(!queue_id_valid(NULL));
}

static int compare_ids(const void *a, const void *b)
{
	return memcmp(a, b, QUEUE_ID_LEN);
}

static void test_ids_unique_across_processes(void)
{
	enum { PROCS = 4, EACH = 20000 };
	int fds[PROCS];
	pid_t pids[PROCS];
	char *all;
	size_t got = 0;

	for (int p = 0; p < PROCS; p++) {
		int pfd[2];
		CHECK(pipe(pfd) == 0);
		pids[p] = fork();
		if (pids[p] == 0) {
			close(pfd[0]);
			FILE *out = fdopen(pfd[1], "w");
			for (int i = 0; i < EACH; i++) {
				char id[QUEUE_ID_SIZE];
				queue_id_new(id);
				fwrite(id, 1, QUEUE_ID_LEN, out);
			}
			fclose(out);
			_exit(0);
		}
		close(pfd[1]);
		fds[p] = pfd[0];
	}
	/* Allocated after the forks: the children have nothing to free. */
	all = xmalloc((size_t)PROCS * EACH * QUEUE_ID_LEN);
	for (int p = 0; p < PROCS; p++) {
		for (;;) {
			ssize_t n = read(fds[p], all + got,
			    (size_t)PROCS * EACH * QUEUE_ID_LEN - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		close(fds[p]);
		int status;
		CHECK(waitpid(pids[p], &status, 0) == pids[p]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_INT(got, (size_t)PROCS * EACH * QUEUE_ID_LEN);
	qsort(all, got / QUEUE_ID_LEN, QUEUE_ID_LEN, compare_ids);
	int dups = 0;
	for (size_t i = 1; i < got / QUEUE_ID_LEN; i++)
		if (memcmp(all + (i - 1) * QUEUE_ID_LEN, all + i * QUEUE_ID_LEN,
		    QUEUE_ID_LEN) == 0)
			dups++;
	CHECK_INT(dups, 0);
	free(all);
}

/* ---- paths, directories, moves ---- */

static void test_paths(void)
{
	char p[256], p2[256];
	queue_path(p, sizeof(p), "/q", QUEUE_INCOMING, "4Kq3xY1z2B0000");
	CHECK_STR(p, "/q/incoming/4Kq3xY1z2B0000");
	queue_path(p, sizeof(p), "/q", QUEUE_DEFERRED, "4Kq3xY1z2B0000");
	CHECK(strncmp(p, "/q/deferred/", 12) == 0);
	CHECK(strchr("0123456789abcdef", p[12]) != NULL && p[13] == '/');
	CHECK_STR(p + 14, "4Kq3xY1z2B0000");
	queue_path(p2, sizeof(p2), "/q", QUEUE_DEFERRED, "4Kq3xY1z2B0000");
	CHECK_STR(p, p2);	/* stable */
	/* Consecutive IDs spread over the hash directories. */
	int seen[16] = { 0 }, distinct = 0;
	for (int i = 0; i < 200; i++) {
		char id[QUEUE_ID_SIZE];
		queue_id_new(id);
		queue_path(p, sizeof(p), "/q", QUEUE_DEFERRED, id);
		int h = p[12] <= '9' ? p[12] - '0' : p[12] - 'a' + 10;
		if (!seen[h]++)
			distinct++;
	}
	CHECK(distinct >= 12);
	/* Too small: an empty path rather than a wrong one. */
	char small[12];
	queue_path(small, sizeof(small), "/q", QUEUE_INCOMING, "4Kq3xY1z2B0000");
	CHECK_STR(small, "");
	/* Room for the path and its NUL exactly, and one byte less. */
	char fit[sizeof("/q/incoming/4Kq3xY1z2B0000")];
	queue_path(fit, sizeof(fit), "/q", QUEUE_INCOMING, "4Kq3xY1z2B0000");
	CHECK_STR(fit, "/q/incoming/4Kq3xY1z2B0000");
	queue_path(fit, sizeof(fit) - 1, "/q", QUEUE_INCOMING, "4Kq3xY1z2B0000");
	CHECK_STR(fit, "");
	char dfit[sizeof("/q/deferred/7/4Kq3xY1z2B0000")];
	queue_path(dfit, sizeof(dfit), "/q", QUEUE_DEFERRED, "4Kq3xY1z2B0000");
	CHECK_STR(dfit + 14, "4Kq3xY1z2B0000");
	queue_path(dfit, sizeof(dfit) - 1, "/q", QUEUE_DEFERRED, "4Kq3xY1z2B0000");
	CHECK_STR(dfit, "");
}

static void test_dirs(void)
{
	char err[256], path[512];
	struct stat st;

	CHECK(queue_dirs_check(qdir, geteuid(), err, sizeof(err)));
	snprintf(path, sizeof(path), "%s/maildrop", qdir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0730);
	snprintf(path, sizeof(path), "%s/deferred/f", qdir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700);

	/* A wrong mode is reported, and fixed by create. */
	snprintf(path, sizeof(path), "%s/hold", qdir);
	CHECK(chmod(path, 0755) == 0);
	CHECK(!queue_dirs_check(qdir, geteuid(), err, sizeof(err)));
	CHECK(strstr(err, "hold") != NULL && strstr(err, "0755") != NULL);
	CHECK(queue_dirs_create(qdir, geteuid(), getegid(), getegid(), err,
	    sizeof(err)));
	CHECK(queue_dirs_check(qdir, geteuid(), err, sizeof(err)));
	/* A wrong owner is reported. */
	CHECK(!queue_dirs_check(qdir, geteuid() + 1, err, sizeof(err)));
	CHECK(strstr(err, "owned by") != NULL);
	/* A missing directory is reported. */
	snprintf(path, sizeof(path), "%s/deferred/3", qdir);
	CHECK(rmdir(path) == 0);
	CHECK(!queue_dirs_check(qdir, geteuid(), err, sizeof(err)));
	CHECK(strstr(err, "deferred/3") != NULL);
	CHECK(queue_dirs_create(qdir, geteuid(), getegid(), getegid(), err,
	    sizeof(err)));
	CHECK(queue_dirs_check(qdir, geteuid(), err, sizeof(err)));
	/* A file where a directory belongs is an error, not followed. */
	char top[300];
	snprintf(top, sizeof(top), "%s/other", qdir);
	CHECK(mkdir(top, 0700) == 0);
	snprintf(path, sizeof(path), "%s/other/incoming", qdir);
	CHECK(symlink("/tmp", path) == 0);
	CHECK(!queue_dirs_create(top, geteuid(), getegid(), getegid(), err,
	    sizeof(err)));
	CHECK(strstr(err, "not a directory") != NULL);
	remove_tree(top);
}

/* As root: owners and maildrop's group are set; as another user: not. */
static void test_dirs_owners(void)
{
	char err[256], top[300], path[400];
	struct stat st;

	if (geteuid() != 0) {
		printf("# skipped: not root\n");
		return;
	}
	snprintf(top, sizeof(top), "%s/owned", qdir);
	CHECK(queue_dirs_create(top, 65534, 65534, 65533, err, sizeof(err)));
	CHECK(queue_dirs_check(top, 65534, err, sizeof(err)));
	snprintf(path, sizeof(path), "%s/maildrop", top);
	CHECK(stat(path, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65533);
	snprintf(path, sizeof(path), "%s/active", top);
	CHECK(stat(path, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534);
	remove_tree(top);

	/* Not root: no chown, the directories belong to the caller. */
	snprintf(top, sizeof(top), "%s/user", qdir);
	CHECK(mkdir(top, 0777) == 0 && chmod(top, 0777) == 0);
	CHECK(chmod(qdir, 0755) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		char sub[400];
		snprintf(sub, sizeof(sub), "%s/q", top);
		if (!queue_dirs_create(sub, 0, 0, 0, err, sizeof(err)))
			_exit(1);
		_exit(queue_dirs_check(sub, 65534, err, sizeof(err)) ? 0 : 2);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(chmod(qdir, 0700) == 0);
	remove_tree(top);
}

static void test_move(void)
{
	struct queue_envelope env, got;
	char err[256], path[512];
	struct stat st;

	make_three(&env);
	CHECK(queue_move(qdir, QUEUE_INCOMING, QUEUE_ACTIVE, env.id, true, err,
	    sizeof(err)));
	CHECK(queue_move(qdir, QUEUE_ACTIVE, QUEUE_DEFERRED, env.id, true, err,
	    sizeof(err)));
	queue_path(path, sizeof(path), qdir, QUEUE_DEFERRED, env.id);
	CHECK(stat(path, &st) == 0);
	queue_envelope_init(&got);
	CHECK_INT(read_message(QUEUE_DEFERRED, env.id, &got, err, sizeof(err)),
	    QUEUE_READ_OK);
	CHECK_STR(got.id, env.id);
	CHECK(queue_move(qdir, QUEUE_DEFERRED, QUEUE_HOLD, env.id, true, err,
	    sizeof(err)));
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	/* Gone from the source: an error naming the file. */
	CHECK(!queue_move(qdir, QUEUE_DEFERRED, QUEUE_ACTIVE, env.id, true, err,
	    sizeof(err)));
	CHECK(strstr(err, env.id) != NULL);
	CHECK(!queue_move(qdir, QUEUE_HOLD, QUEUE_ACTIVE, "../x", true, err,
	    sizeof(err)));
	CHECK(queue_move(qdir, QUEUE_HOLD, QUEUE_CORRUPT, env.id, true, err,
	    sizeof(err)));
	queue_envelope_free(&got);
	queue_envelope_free(&env);
}

/* ---- writer failures ---- */

static void test_writer_abort_and_rejects(void)
{
	struct queue_envelope env;
	char err[256];
	int before = count_entries(QUEUE_INCOMING);

	queue_envelope_init(&env);
	env.sender = xstrdup("s@example.org");
	queue_envelope_add_rcpt(&env, "r@example.org", 0, NULL);
	struct queue_writer *w = queue_writer_open(qdir, QUEUE_INCOMING, &env,
	    err, sizeof(err));
	CHECK(w != NULL);
	CHECK_INT(count_entries(QUEUE_INCOMING), before + 1);
	CHECK(queue_writer_write(w, "abc", 3));
	queue_writer_abort(w);
	CHECK_INT(count_entries(QUEUE_INCOMING), before);
	queue_envelope_free(&env);

	/* Values the format cannot carry: refused, no file created. */
	static const struct {
		const char *sender, *rcpt, *orcpt, *attr_name, *attr_value,
		    *envid;
	} rejects[] = {
		{ "a\r\nR P - - evil@example.org", "r@x", NULL, NULL, NULL, NULL },
		{ "s@x", "r@x\nD 00000000000000000000", NULL, NULL, NULL, NULL },
		{ "s@x", "", NULL, NULL, NULL, NULL },
		{ "s@x", "r@x", "rfc822;a b@x", NULL, NULL, NULL },
		{ "s@x", "r@x", "no-type", NULL, NULL, NULL },
		{ "s@x", "r@x", NULL, "bad name", "v", NULL },
		{ "s@x", "r@x", NULL, "helo", "x\ry", NULL },
		{ "s@x", "r@x", NULL, NULL, NULL, "id\n" },
	};
	for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
		queue_envelope_init(&env);
		env.sender = xstrdup(rejects[i].sender);
		queue_envelope_add_rcpt(&env, rejects[i].rcpt, 0,
		    rejects[i].orcpt);
		if (rejects[i].attr_name)
			queue_envelope_set_attr(&env, rejects[i].attr_name,
			    rejects[i].attr_value);
		if (rejects[i].envid)
			env.envid = xstrdup(rejects[i].envid);
		err[0] = '\0';
		w = queue_writer_open(qdir, QUEUE_INCOMING, &env, err,
		    sizeof(err));
		CHECK(w == NULL);
		if (w != NULL) {
			printf("# case %zu accepted\n", i);
			queue_writer_abort(w);
		}
		CHECK(err[0] != '\0');
		queue_envelope_free(&env);
	}
	CHECK_INT(count_entries(QUEUE_INCOMING), before);

	/* A missing directory: an error, not a crash. */
	queue_envelope_init(&env);
	env.sender = xstrdup("");
	CHECK(queue_writer_open(qdir, "nonexistent", &env, err,
	    sizeof(err)) == NULL);
	CHECK(strstr(err, "nonexistent") != NULL);
	queue_envelope_free(&env);
}

/*
 * A write error in the middle of the content (the file size limit stands
 * in for a full disk): write and commit fail, nothing is left behind.
 */
static void test_writer_disk_full(void)
{
	struct queue_envelope env;
	char err[256];
	struct rlimit old, lim;
	int before = count_entries(QUEUE_INCOMING);
	static const size_t piece_sizes[] = { 1000, 200000 };

	signal(SIGXFSZ, SIG_IGN);
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	for (size_t c = 0; c < 2; c++) {
		queue_envelope_init(&env);
		env.sender = xstrdup("s@example.org");
		queue_envelope_add_rcpt(&env, "r@example.org", 0, NULL);
		struct queue_writer *w = queue_writer_open(qdir, QUEUE_INCOMING,
		    &env, err, sizeof(err));
		CHECK(w != NULL);
		lim = old;
		lim.rlim_cur = 1024 * 1024;
		CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
		char *piece = xcalloc(1, piece_sizes[c]);
		bool ok = true;
		for (int i = 0; ok && i < 20000; i++)
			ok = queue_writer_write(w, piece, piece_sizes[c]);
		CHECK(!ok);
		CHECK_INT(errno, EFBIG);
		/* Nothing is left, even before the caller gives up. */
		CHECK_INT(count_entries(QUEUE_INCOMING), before);
		CHECK(!queue_writer_commit(w, err, sizeof(err)));
		CHECK(strstr(err, "File too large") != NULL);
		CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
		CHECK_INT(count_entries(QUEUE_INCOMING), before);
		free(piece);
		queue_envelope_free(&env);
	}
	/* The limit hit exactly at commit (content fits the buffer). */
	queue_envelope_init(&env);
	env.sender = xstrdup("s@example.org");
	struct queue_writer *w = queue_writer_open(qdir, QUEUE_INCOMING, &env,
	    err, sizeof(err));
	CHECK(w != NULL);
	CHECK(queue_writer_write(w, "hello\r\n", 7));
	lim = old;
	lim.rlim_cur = 0;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	CHECK(!queue_writer_commit(w, err, sizeof(err)));
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK_INT(count_entries(QUEUE_INCOMING), before);
	queue_envelope_free(&env);
	signal(SIGXFSZ, SIG_DFL);
}

static void test_maildrop_mode(void)
{
	struct queue_envelope env;
	char path[512];
	struct stat st;

	mode_t old = umask(077);
	queue_envelope_init(&env);
	env.sender = xstrdup("local@example.org");
	queue_envelope_set_attr(&env, "origin", "local");
	queue_envelope_add_rcpt(&env, "r@example.org", 0, NULL);
	CHECK(write_message(QUEUE_MAILDROP, &env, "x\r\n", 3));
	queue_path(path, sizeof(path), qdir, QUEUE_MAILDROP, env.id);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
	umask(old);

	/*
	 * As setgid sendmail does: a user in the directory's group, who may
	 * write and search maildrop/ but not read (list) it, can commit.
	 */
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/maildrop", qdir);
		CHECK(chown(path, 0, 65533) == 0);
		CHECK(chmod(qdir, 0711) == 0);
		int pfd[2];
		CHECK(pipe(pfd) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			if (setgid(65533) < 0 || setuid(65534) < 0)
				_exit(3);
			if (opendir(path) != NULL)	/* cannot list it */
				_exit(4);
			if (!write_message(QUEUE_MAILDROP, &env, "y\r\n", 3))
				_exit(1);
			if (write(pfd[1], env.id, QUEUE_ID_LEN) != QUEUE_ID_LEN)
				_exit(2);
			_exit(0);
		}
		close(pfd[1]);
		char id[QUEUE_ID_SIZE] = "";
		CHECK(read(pfd[0], id, QUEUE_ID_LEN) == QUEUE_ID_LEN);
		close(pfd[0]);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK(chmod(qdir, 0700) == 0);
		queue_path(path, sizeof(path), qdir, QUEUE_MAILDROP, id);
		CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644 &&
		    st.st_uid == 65534);
		struct queue_envelope got;
		char err[256];
		queue_envelope_init(&got);
		CHECK_INT(read_message(QUEUE_MAILDROP, id, &got, err,
		    sizeof(err)), QUEUE_READ_OK);
		CHECK_INT(got.content_length, 3);
		queue_envelope_free(&got);
	}
	queue_envelope_free(&env);
}

/* ---- damaged files ---- */

static const char valid_file[] =
    "V 1\n"
    "I 4Kq3xY1z2B0000\n"
    "T 1700000000.123456\n"
    "F s@example.org\n"
    "B 8BITMIME\n"
    "U\n"
    "Q\n"
    "E env-1\n"
    "N HDRS\n"
    "K BOUNCE\n"
    "A origin=local\n"
    "A helo=\n"
    "W 0\n"
    "R P SFD rfc822;a@example.net a@example.net\n"
    "R S - - b@example.net\n"
    "D 00000000000000000006\n"
    "x\r\ny\r\n"
    "X 0 P SFD rfc822;a@example.net c@example.net\n"
    "Z 2 4.4.1 connect to mx: refused\n"
    "Z 1 5.1.1 \n";

struct corrupt_case {
	const char *name;
	const char *from;	/* replace this part of valid_file... */
	const char *to;		/* ...with this */
	const char *why;	/* expected in the error message */
};

static const struct corrupt_case corrupt_cases[] = {
	{ "version 2", "V 1\n", "V 2\n", "version" },
	{ "no version", "V 1\n", "", "version" },
	{ "version not first", "V 1\nI 4Kq3xY1z2B0000\n",
	  "I 4Kq3xY1z2B0000\nV 1\n", "version" },
	{ "bad ID", "I 4Kq3xY1z2B0000", "I 4Kq3xY1z2B-000", "queue ID" },
	{ "short ID", "I 4Kq3xY1z2B0000", "I 4Kq3xY1z2B", "queue ID" },
	{ "no ID", "I 4Kq3xY1z2B0000\n", "", "missing" },
	{ "bad time", "T 1700000000.123456", "T 1700000000.12345", "time" },
	{ "time with sign", "T 1700000000", "T -170000000", "time" },
	{ "no sender", "F s@example.org\n", "", "missing" },
	{ "bad body", "B 8BITMIME", "B 9BIT", "body" },
	{ "U with value", "U\n", "U yes\n", "value" },
	{ "empty envid", "E env-1", "E ", "ENVID" },
	{ "bad RET", "N HDRS", "N SOME", "RET" },
	{ "bad kind", "K BOUNCE", "K SPAM", "kind" },
	{ "attribute without =", "A origin=local", "A origin", "attribute" },
	{ "attribute bad name", "A origin=local", "A or gin=local", "attribute" },
	{ "repeated attribute", "A helo=", "A origin=x", "repeated" },
	{ "no W", "W 0\n", "", "missing" },
	{ "bad W", "W 0", "W 2", "warning" },
	{ "repeated W", "W 0\n", "W 0\nW 0\n", "order" },
	{ "record out of order", "K BOUNCE\nA origin=local\n",
	  "A origin=local\nK BOUNCE\n", "order" },
	{ "R before A", "A helo=\nW 0\n", "W 0\nA helo=\n", "order" },
	{ "unknown record", "U\n", "G x\n", "unknown" },
	{ "Q with value", "U\n", "U\nQ yes\n", "value" },
	{ "Q after E", "E env-1\n", "E env-1\nQ\n", "order" },
	{ "lower-case record", "U\n", "u\n", "unknown" },
	{ "bad status byte", "R S - -", "R Q - -", "status" },
	{ "bad notify", "R P SFD", "R P SFX", "NOTIFY" },
	{ "repeated notify", "R P SFD", "R P SFS", "NOTIFY" },
	{ "empty notify", "R S - -", "R S  -", "NOTIFY" },
	{ "orcpt without type", "R P SFD rfc822;a@example.net",
	  "R P SFD a@example.net", "ORCPT" },
	{ "no address", "R S - - b@example.net", "R S - - ", "address" },
	{ "missing fields", "R S - - b@example.net", "R S", "status" },
	{ "no D", "D 00000000000000000006\n", "", "record" },
	{ "short D", "D 00000000000000000006", "D 6", "length" },
	{ "D not digits", "D 00000000000000000006", "D 0000000000000000000x",
	  "length" },
	{ "length past the end", "D 00000000000000000006",
	  "D 00000000000000009999", "beyond" },
	{ "huge length", "D 00000000000000000006", "D 99999999999999999999",
	  "length" },
	{ "CR in a record", "F s@example.org", "F s@exa\rmple.org", "CR" },
	{ "empty line", "W 0\n", "W 0\n\n", "empty" },
	{ "record without space", "F s@example.org", "Fs@example.org",
	  "value" },
	{ "trailer unknown", "Z 1 5.1.1 \n", "Q 1 5.1.1 \n", "unknown" },
	{ "trailer partial", "Z 1 5.1.1 \n", "Z 1 5.1.1 ", "partial" },
	{ "X parent out of range", "X 0 P", "X 3 P", "recipient" },
	{ "X parent not a number", "X 0 P", "X a P", "recipient" },
	{ "X bad status", "X 0 P", "X 0 Q", "status" },
	{ "Z rcpt out of range", "Z 2 4.4.1", "Z 3 4.4.1", "recipient" },
	{ "Z bad dsn", "Z 2 4.4.1", "Z 2 4.4", "DSN" },
	{ "Z bad dsn class", "Z 2 4.4.1", "Z 2 3.4.1", "DSN" },
	{ "Z no text field", "Z 1 5.1.1 \n", "Z 1 5.1.1\n", "DSN" },
	{ "trailer record too short", "Z 1 5.1.1 \n", "Z\n", "trailer" },
	{ "trailer with CR", "Z 1 5.1.1 \n", "Z 1 5.1.1 a\rb\n", "trailer" },
};

/* valid_file with one substitution, in a fresh file; returns its fd. */
static int make_file(const char *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/corrupt/test.XXXXXX", qdir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	if (len && write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_valid_file_reads(void)
{
	struct queue_envelope env;
	char err[256];
	int fd = make_file(valid_file, sizeof(valid_file) - 1);
	CHECK(fd >= 0);
	queue_envelope_init(&env);
	CHECK_INT(queue_read(fd, &env, err, sizeof(err)), QUEUE_READ_OK);
	CHECK_STR(env.id, "4Kq3xY1z2B0000");
	CHECK_INT(env.arrival_sec, 1700000000);
	CHECK_INT(env.arrival_usec, 123456);
	CHECK_INT(env.kind, QUEUE_KIND_BOUNCE);
	CHECK_INT(env.ret, QUEUE_RET_HDRS);
	CHECK_STR(env.envid, "env-1");
	CHECK_STR(queue_envelope_attr(&env, "helo"), "");
	CHECK_STR(queue_envelope_attr(&env, "origin"), "local");
	CHECK(queue_envelope_attr(&env, "nothing") == NULL);
	CHECK_INT(env.nrcpts, 3);
	CHECK_INT(env.rcpts[0].notify, QUEUE_NOTIFY_SUCCESS |
	    QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	CHECK_INT(env.rcpts[1].status, QUEUE_RCPT_SENT);
	CHECK_INT(env.rcpts[2].parent, 0);
	CHECK_STR(env.rcpts[2].last_reason, "connect to mx: refused");
	CHECK_STR(env.rcpts[1].last_dsn, "5.1.1");
	CHECK_INT(env.content_length, 6);
	CHECK_INT(valid_file[env.content_offset], 'x');
	CHECK_INT(valid_file[env.rcpts[1].status_offset], 'S');
	CHECK_INT(valid_file[env.rcpts[2].status_offset], 'P');
	CHECK_INT(valid_file[env.delay_warned_offset], '0');
	/* The reader does not move the file offset. */
	CHECK_INT(lseek(fd, 0, SEEK_CUR), sizeof(valid_file) - 1);
	close(fd);
	queue_envelope_free(&env);
}

/*
 * queue_read() takes its 64 KiB buffer once per process and keeps it, not
 * once per file: every malloc of this program passes here and the large
 * ones are counted. AddressSanitizer brings its own malloc, which this
 * one would hide, so a sanitized build checks the reads only.
 */
#if !defined(__SANITIZE_ADDRESS__)
#define COUNTS_MALLOC
extern void *__libc_malloc(size_t size);
static unsigned long big_mallocs;

void *malloc(size_t size)
{
	if (size > QUEUE_MAX_RECORD)
		big_mallocs++;
	return __libc_malloc(size);
}
#endif

static void test_read_buffer_kept(void)
{
	struct queue_envelope env;
	char err[256];
	queue_envelope_init(&env);
	for (int i = 0; i < 3; i++) {
		int fd = make_file(valid_file, sizeof(valid_file) - 1);
		CHECK(fd >= 0);
#ifdef COUNTS_MALLOC
		if (i == 1)
			big_mallocs = 0;	/* the first read may take it */
#endif
		CHECK_INT(queue_read(fd, &env, err, sizeof(err)),
		    QUEUE_READ_OK);
		CHECK_INT(env.nrcpts, 3);
		close(fd);
	}
#ifdef COUNTS_MALLOC
	CHECK_INT(big_mallocs, 0);
#endif
	queue_envelope_free(&env);
}

static void test_corrupt_files(void)
{
	for (size_t c = 0; c < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); c++) {
		const struct corrupt_case *tc = &corrupt_cases[c];
		struct queue_envelope env;
		struct str data;
		char err[256] = "";

		const char *at = strstr(valid_file, tc->from);
		CHECK(at != NULL);
		if (at == NULL) {
			printf("# %s: pattern not found\n", tc->name);
			continue;
		}
		str_init(&data, STR_NO_MAX);
		str_append(&data, valid_file, (size_t)(at - valid_file));
		str_append_cstr(&data, tc->to);
		str_append_cstr(&data, at + strlen(tc->from));
		int fd = make_file(data.data, data.len);
		CHECK(fd >= 0);
		queue_envelope_init(&env);
		enum queue_read_result r = queue_read(fd, &env, err, sizeof(err));
		CHECK_INT(r, QUEUE_READ_CORRUPT);
		if (r != QUEUE_READ_CORRUPT)
			printf("# case: %s\n", tc->name);
		else if (tc->why && strstr(err, tc->why) == NULL) {
			printf("# %s: message \"%s\" lacks \"%s\"\n", tc->name,
			    err, tc->why);
			CHECK(!"message names the problem");
		}
		/* A failed read leaves a clean envelope. */
		CHECK(env.nrcpts == 0 && env.sender == NULL);
		queue_envelope_free(&env);
		close(fd);
		str_free(&data);
	}
	/* Not a regular file; an empty file; an overlong record. */
	struct queue_envelope env;
	char err[256];
	char dirpath[512];
	snprintf(dirpath, sizeof(dirpath), "%s/corrupt", qdir);
	int dfd = open(dirpath, O_RDONLY | O_DIRECTORY);
	queue_envelope_init(&env);
	CHECK_INT(queue_read(dfd, &env, err, sizeof(err)), QUEUE_READ_CORRUPT);
	close(dfd);
	int fd = make_file("", 0);
	CHECK_INT(queue_read(fd, &env, err, sizeof(err)), QUEUE_READ_CORRUPT);
	close(fd);
	struct str big;
	str_init(&big, STR_NO_MAX);
	str_append_cstr(&big, "V 1\nI 4Kq3xY1z2B0000\nT 1.000000\nF ");
	for (int i = 0; i < 100000; i++)
		str_append_char(&big, 'a');
	str_append_cstr(&big, "\nB 7BIT\nW 0\nD 00000000000000000000\n");
	fd = make_file(big.data, big.len);
	CHECK_INT(queue_read(fd, &env, err, sizeof(err)), QUEUE_READ_CORRUPT);
	CHECK(strstr(err, "too long") != NULL);
	close(fd);
	str_free(&big);
	/* A closed descriptor is an I/O error, not corruption. */
	CHECK_INT(queue_read(fd, &env, err, sizeof(err)), QUEUE_READ_ERROR);
	queue_envelope_free(&env);
}

/*
 * Every truncation of a valid file reads as CORRUPT or OK, never crashes;
 * a cut inside the envelope or content is always CORRUPT, and a cut at the
 * end of a trailer record is OK. Then every single-byte change.
 */
static void test_truncations_and_mutations(void)
{
	size_t full = sizeof(valid_file) - 1;
	size_t trailer = (size_t)(strstr(valid_file, "X 0") - valid_file);
	int wrong = 0;
	struct queue_envelope env;
	char err[256];

	queue_envelope_init(&env);
	for (size_t cut = 0; cut <= full; cut++) {
		int fd = make_file(valid_file, cut);
		enum queue_read_result r = queue_read(fd, &env, err, sizeof(err));
		close(fd);
		bool at_record_end = cut >= trailer && valid_file[cut - 1] == '\n';
		enum queue_read_result want = at_record_end ? QUEUE_READ_OK :
		    QUEUE_READ_CORRUPT;
		if (r != want && wrong++ < 5)
			printf("# cut at %zu: result %d, want %d (%s)\n", cut,
			    r, want, err);
		queue_envelope_free(&env);
	}
	CHECK_INT(wrong, 0);

	char *copy = xmalloc(full);
	static const char replacements[] = { '\0', '\n', '\r', ' ', '0', '9',
	    'Z', 'X', '-', ';', '=', '.', '\377' };
	int crashes = 0, missed = 0;
	size_t content_start = (size_t)(strstr(valid_file, "x\r\ny") -
	    valid_file);
	for (size_t i = 0; i < full; i++) {
		for (size_t k = 0; k < sizeof(replacements); k++) {
			memcpy(copy, valid_file, full);
			copy[i] = replacements[k];
			int fd = make_file(copy, full);
			enum queue_read_result r = queue_read(fd, &env, err,
			    sizeof(err));
			close(fd);
			if (r != QUEUE_READ_OK && r != QUEUE_READ_CORRUPT)
				crashes++;
			/* NUL and CR never belong in a record. */
			bool in_records = i < content_start || i >= trailer;
			if (in_records && (replacements[k] == '\0' ||
			    replacements[k] == '\r') && r != QUEUE_READ_CORRUPT) {
				if (missed++ < 3)
					printf("# byte %zu = %d read OK\n", i,
					    replacements[k]);
			}
			queue_envelope_free(&env);
		}
	}
	CHECK_INT(crashes, 0);
	CHECK_INT(missed, 0);
	free(copy);
}

/*
 * A crash before the commit's fsyncs may leave the file under its final
 * name with any prefix of its bytes on disk, or with a zero-filled tail
 * (queue.h, "Durability"). Every such file reads as CORRUPT, except a cut
 * that leaves the complete content and only loses the C record.
 */
static void test_unfinished_files(void)
{
	struct queue_envelope env, got;
	char err[256], path[512];

	make_three(&env);
	struct queue_writer *w = queue_writer_open(qdir, QUEUE_INCOMING, &env,
	    err, sizeof(err));
	CHECK(w != NULL);
	if (w == NULL)
		return;
	static const char content[] = "Subject: t\r\n\r\nbody\r\n";
	CHECK(queue_writer_write(w, content, sizeof(content) - 1));
	CHECK(queue_writer_commit(w, err, sizeof(err)));
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, env.id);
	int fd = open(path, O_RDONLY);
	struct stat st;
	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	size_t full = (size_t)st.st_size;
	char *file = xmalloc(full);
	CHECK(pread(fd, file, full, 0) == (ssize_t)full);
	close(fd);
	unlink(path);
	size_t content_end = (size_t)(strstr(file, "body\r\n") - file) + 6;

	int wrong = 0;
	queue_envelope_init(&got);
	for (size_t cut = 0; cut < full; cut++) {
		int f = make_file(file, cut);
		enum queue_read_result r = queue_read(f, &got, err, sizeof(err));
		close(f);
		enum queue_read_result want = cut == content_end ?
		    QUEUE_READ_OK : QUEUE_READ_CORRUPT;
		if (r != want && wrong++ < 5)
			printf("# cut at %zu: result %d (%s)\n", cut, r, err);
		queue_envelope_free(&got);
	}
	/* Zero-filled tails of every length. */
	char *copy = xmalloc(full);
	for (size_t zeros = 1; zeros <= full; zeros++) {
		memcpy(copy, file, full);
		memset(copy + full - zeros, 0, zeros);
		int f = make_file(copy, full);
		enum queue_read_result r = queue_read(f, &got, err, sizeof(err));
		close(f);
		if (r != QUEUE_READ_CORRUPT && wrong++ < 5)
			printf("# %zu zero bytes at the end: result %d\n",
			    zeros, r);
		queue_envelope_free(&got);
	}
	CHECK_INT(wrong, 0);

	/* The length was never patched in: said so. */
	memcpy(copy, file, full);
	char *d = strstr(copy, "\nD ");
	CHECK(d != NULL);
	if (d != NULL)
		memset(d + 3, '-', 20);
	int f = make_file(copy, full);
	CHECK_INT(queue_read(f, &got, err, sizeof(err)), QUEUE_READ_CORRUPT);
	CHECK(strstr(err, "unfinished") != NULL);
	close(f);
	queue_envelope_free(&got);
	free(copy);
	free(file);
	queue_envelope_free(&env);
}

/* ---- recycling ---- */

static void test_recycle(void)
{
	struct queue_envelope a, b, got;
	char err[256], path[512];
	struct stat st_a, st_b;

	make_three(&a);
	CHECK(queue_move(qdir, QUEUE_INCOMING, QUEUE_ACTIVE, a.id, true, err,
	    sizeof(err)));
	queue_path(path, sizeof(path), qdir, QUEUE_ACTIVE, a.id);
	CHECK(stat(path, &st_a) == 0);
	/* As qmgr removes it: through the descriptor it holds. */
	int held = open(path, O_RDWR | O_CLOEXEC);
	CHECK(held >= 0);
	CHECK(queue_remove(qdir, path, held));
	if (held >= 0)
		close(held);
	CHECK(stat(path, &st_b) < 0 && errno == ENOENT);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 1);

	/* The next file in incoming/ is that inode, holding only itself
	 * (once the writer looks again: make_three found recycle/ empty). */
	usleep(150 * 1000);
	queue_envelope_init(&b);
	b.sender = xstrdup("");
	queue_envelope_add_rcpt(&b, "x@example.com", 0, NULL);
	CHECK(write_message(QUEUE_INCOMING, &b, "X: 1\r\n\r\n", 8));
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, b.id);
	CHECK(stat(path, &st_b) == 0);
	CHECK(st_b.st_ino == st_a.st_ino);
	CHECK_INT(st_b.st_mode & 07777, 0600);
	CHECK_INT(st_b.st_size, b.trailer_offset + 4);	/* "C 8\n" */
	queue_envelope_init(&got);
	CHECK_INT(read_message(QUEUE_INCOMING, b.id, &got, err, sizeof(err)),
	    QUEUE_READ_OK);
	CHECK_STR(got.sender, "");
	CHECK_INT(got.nrcpts, 1);
	CHECK_INT(got.content_length, 8);
	queue_envelope_free(&got);

	/* recycle/ is empty now: a new file is created, and a file too big
	 * to keep is unlinked, not recycled. */
	queue_envelope_free(&a);
	make_three(&a);
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, a.id);
	CHECK(stat(path, &st_a) == 0 && st_a.st_ino != st_b.st_ino);
	CHECK(truncate(path, QUEUE_RECYCLE_MAX_SIZE + 1) == 0);
	CHECK(queue_remove(qdir, path, -1));
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);
	CHECK(stat(path, &st_a) < 0 && errno == ENOENT);

	/* A file in recycle/ that qmgr would not have left there (another
	 * mode) is removed, never written into. */
	usleep(150 * 1000);
	snprintf(path, sizeof(path), "%s/%s/7", qdir, QUEUE_RECYCLE);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK(fd >= 0 && fchmod(fd, 0644) == 0);
	CHECK(fd >= 0 && write(fd, "keep", 4) == 4);
	queue_envelope_free(&b);
	queue_envelope_init(&b);
	b.sender = xstrdup("s@example.org");
	queue_envelope_add_rcpt(&b, "y@example.com", 0, NULL);
	CHECK(write_message(QUEUE_INCOMING, &b, "", 0));
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, b.id);
	CHECK(stat(path, &st_b) == 0);
	CHECK_INT(st_b.st_mode & 07777, 0600);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);
	char kept[8] = "";
	CHECK(fd >= 0 && fstat(fd, &st_a) == 0 && st_a.st_nlink == 0);
	CHECK(fd >= 0 && pread(fd, kept, sizeof(kept), 0) == 4);
	CHECK_STR(kept, "keep");
	if (fd >= 0)
		close(fd);

	/* A stale second name of a queued file (a power cut kept only the
	 * rename's target; fsck counted both names): never claimed, and
	 * master's look at recycle/ at start removes the name, not the
	 * message. */
	char link_path[512];
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, b.id);
	snprintf(link_path, sizeof(link_path), "%s/%s/9", qdir, QUEUE_RECYCLE);
	CHECK(link(path, link_path) == 0);
	usleep(150 * 1000);
	queue_envelope_free(&a);
	make_three(&a);
	CHECK(stat(path, &st_a) == 0 && st_a.st_size > 0);
	queue_envelope_init(&got);
	CHECK_INT(read_message(QUEUE_INCOMING, b.id, &got, err, sizeof(err)),
	    QUEUE_READ_OK);
	queue_envelope_free(&got);
	CHECK(link(path, link_path) == 0 || errno == EEXIST);
	struct queue_recycle_kept done;
	CHECK(queue_recycle_keep(qdir, geteuid(), &done, err, sizeof(err)));
	CHECK_INT(done.kept, 0);
	CHECK_INT(done.removed, 1);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);
	CHECK(stat(path, &st_a) == 0 && st_a.st_nlink == 1 &&
	    st_a.st_size > 0);
	queue_envelope_free(&a);

	/* Removing a file that is gone reports ENOENT, also one unlinked
	 * behind the descriptor (postern queue delete); nothing is
	 * recycled then. */
	CHECK(!queue_remove(qdir, "/nonexistent/queue/file", -1));
	CHECK_INT(errno, ENOENT);
	queue_envelope_free(&a);
	make_three(&a);
	queue_path(path, sizeof(path), qdir, QUEUE_INCOMING, a.id);
	held = open(path, O_RDWR | O_CLOEXEC);
	CHECK(held >= 0 && unlink(path) == 0);
	CHECK(!queue_remove(qdir, path, held));
	CHECK_INT(errno, ENOENT);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);
	if (held >= 0)
		close(held);
	queue_envelope_free(&a);
	queue_envelope_free(&b);
}

/* A finished file in recycle/, made by hand: what slot it takes and what
 * it replaces is queue_remove()'s choice alone (no writer claims here). */
static bool make_finished(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, text, strlen(text)) ==
	    (ssize_t)strlen(text);
	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * A slot still holding a file no writer took is passed over for the next
 * one: a finished file frees another only when the slots it tries are
 * all taken, so recycle/ keeps what it can hold and never holds more.
 */
static void test_recycle_slots(void)
{
	char path[512];
	ino_t kept[QUEUE_RECYCLE_SLOTS] = { 0 };
	struct stat st;

	empty_dir(QUEUE_RECYCLE);
	/* Every other slot taken: each remove finds a free one next door. */
	for (unsigned slot = 0; slot < QUEUE_RECYCLE_SLOTS; slot += 2) {
		snprintf(path, sizeof(path), "%s/%s/%u", qdir, QUEUE_RECYCLE,
		    slot);
		CHECK(make_finished(path, "old"));
		CHECK(stat(path, &st) == 0);
		kept[slot] = st.st_ino;
	}
	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "%s/%s/slots%d", qdir,
		    QUEUE_INCOMING, i);
		CHECK(make_finished(path, "new"));
		CHECK(queue_remove(qdir, path, -1));
		CHECK(stat(path, &st) < 0 && errno == ENOENT);
	}
	CHECK_INT(count_entries(QUEUE_RECYCLE), QUEUE_RECYCLE_SLOTS / 2 + 8);
	int replaced = 0;
	for (unsigned slot = 0; slot < QUEUE_RECYCLE_SLOTS; slot += 2) {
		snprintf(path, sizeof(path), "%s/%s/%u", qdir, QUEUE_RECYCLE,
		    slot);
		if (stat(path, &st) < 0 || st.st_ino != kept[slot])
			replaced++;
	}
	CHECK_INT(replaced, 0);

	/* All slots taken: a finished file takes one, and recycle/ holds
	 * no more than its slots. */
	for (unsigned slot = 0; slot < QUEUE_RECYCLE_SLOTS; slot++) {
		snprintf(path, sizeof(path), "%s/%s/%u", qdir, QUEUE_RECYCLE,
		    slot);
		if (stat(path, &st) < 0)
			CHECK(make_finished(path, "old"));
	}
	CHECK_INT(count_entries(QUEUE_RECYCLE), QUEUE_RECYCLE_SLOTS);
	snprintf(path, sizeof(path), "%s/%s/slots-full", qdir, QUEUE_INCOMING);
	CHECK(make_finished(path, "new"));
	CHECK(queue_remove(qdir, path, -1));
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	CHECK_INT(count_entries(QUEUE_RECYCLE), QUEUE_RECYCLE_SLOTS);
	/* Across a restart every one of them stays (none has another name). */
	char err[256];
	struct queue_recycle_kept done;
	CHECK(queue_recycle_keep(qdir, geteuid(), &done, err, sizeof(err)));
	CHECK_INT(done.kept, QUEUE_RECYCLE_SLOTS);
	CHECK_INT(done.removed + done.set_aside, 0);
	empty_dir(QUEUE_RECYCLE);
}

/* Inode number of qdir/rel, 0 when it is gone. */
static ino_t inode_of(const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", qdir, rel);
	return lstat(path, &st) == 0 ? st.st_ino : 0;
}

static bool make_in(const char *rel, const char *text, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", qdir, rel);
	return make_finished(path, text) && chmod(path, mode) == 0;
}

/*
 * What master keeps of recycle/ at start: what qmgr leaves there and no
 * queue file shares; every other name goes, and a second name of a
 * queued file goes without its file.
 */
static void test_recycle_keep(void)
{
	char err[256], path[512], to[512];
	struct queue_recycle_kept done;
	struct stat st;

	empty_dir(QUEUE_RECYCLE);
	CHECK(queue_recycle_keep(qdir, geteuid(), &done, err, sizeof(err)));
	CHECK_INT(done.kept + done.removed + done.set_aside, 0);

	CHECK(make_in("recycle/3", "old", 0600));
	CHECK(make_in("recycle/255", "old", 0600));
	ino_t kept3 = inode_of("recycle/3"), kept255 = inode_of("recycle/255");
	CHECK(make_in("recycle/5", "old", 0644));	/* another mode */
	CHECK(make_in("recycle/256", "old", 0600));	/* no slot's name */
	CHECK(make_in("recycle/07", "old", 0600));
	CHECK(make_in("recycle/.8", "old", 0600));
	CHECK(make_in("recycle/9", "old", 0600));	/* too big */
	snprintf(path, sizeof(path), "%s/recycle/9", qdir);
	CHECK(truncate(path, QUEUE_RECYCLE_MAX_SIZE + 1) == 0);
	/* Not files: removed, and a symlink's target untouched. */
	CHECK(make_in("hold/target", "target", 0600));
	snprintf(path, sizeof(path), "%s/recycle/10", qdir);
	snprintf(to, sizeof(to), "%s/hold/target", qdir);
	CHECK(symlink(to, path) == 0);
	snprintf(path, sizeof(path), "%s/recycle/11", qdir);
	CHECK(mkfifo(path, 0600) == 0);
	snprintf(path, sizeof(path), "%s/recycle/12", qdir);
	CHECK(mkdir(path, 0700) == 0);
	/* A directory that cannot be removed goes to corrupt/. */
	snprintf(path, sizeof(path), "%s/recycle/13", qdir);
	CHECK(mkdir(path, 0700) == 0);
	CHECK(make_in("recycle/13/x", "x", 0600));
	ino_t dir13 = inode_of("recycle/13");
	/* Second names of a queued file and of a file outside the queue. */
	CHECK(make_in("deferred/3/Queued", "queued", 0600));
	snprintf(path, sizeof(path), "%s/deferred/3/Queued", qdir);
	snprintf(to, sizeof(to), "%s/recycle/14", qdir);
	CHECK(link(path, to) == 0);
	CHECK(make_in("outside", "outside", 0600));
	snprintf(path, sizeof(path), "%s/outside", qdir);
	snprintf(to, sizeof(to), "%s/recycle/15", qdir);
	CHECK(link(path, to) == 0);

	CHECK(queue_recycle_keep(qdir, geteuid(), &done, err, sizeof(err)));
	CHECK_INT(done.kept, 2);
	CHECK_INT(done.removed, 10);
	CHECK_INT(done.set_aside, 1);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 2);
	CHECK(inode_of("recycle/3") == kept3 && inode_of("recycle/255") == kept255);
	CHECK(lstat(to, &st) < 0);
	snprintf(path, sizeof(path), "%s/deferred/3/Queued", qdir);
	CHECK(stat(path, &st) == 0 && st.st_nlink == 1 && st.st_size == 6);
	snprintf(path, sizeof(path), "%s/outside", qdir);
	CHECK(stat(path, &st) == 0 && st.st_nlink == 1);
	snprintf(path, sizeof(path), "%s/hold/target", qdir);
	CHECK(stat(path, &st) == 0 && st.st_size == 6);
	char aside[64];
	snprintf(aside, sizeof(aside), "corrupt/recycle.%ju.0", (uintmax_t)dir13);
	CHECK(inode_of(aside) == dir13);

	/* Another owner's file is not kept. */
	CHECK(queue_recycle_keep(qdir, geteuid() + 1, &done, err,
	    sizeof(err)));
	CHECK_INT(done.kept, 0);
	CHECK_INT(done.removed, 2);
	CHECK_INT(count_entries(QUEUE_RECYCLE), 0);

	snprintf(path, sizeof(path), "%s/%s", qdir, aside);
	remove_tree(path);
	snprintf(path, sizeof(path), "%s/outside", qdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/deferred/3/Queued", qdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hold/target", qdir);
	unlink(path);
}

int main(void)
{
	setup_queue();
	RUN(test_roundtrip);
	RUN(test_status_updates_persist);
	RUN(test_expansion_and_reasons);
	RUN(test_ids_unique_sorted);
	RUN(test_ids_unique_across_processes);
	RUN(test_paths);
	RUN(test_dirs);
	RUN(test_dirs_owners);
	RUN(test_move);
	RUN(test_writer_abort_and_rejects);
	RUN(test_writer_disk_full);
	RUN(test_maildrop_mode);
	RUN(test_valid_file_reads);
	RUN(test_read_buffer_kept);
	RUN(test_corrupt_files);
	RUN(test_truncations_and_mutations);
	RUN(test_unfinished_files);
	RUN(test_recycle);
	RUN(test_recycle_slots);
	RUN(test_recycle_keep);
	remove_tree(qdir);
	return unit_done();
}
