/*
 * test_bio_stress.c - bio's check_timeout hook (util/bio.c), on which
 * smtpd's stress mode stands: a hook that lowers timeout_ms before a
 * wait, or when a signal interrupts one, ends the wait in hand at the
 * new timeout from that moment; the cap does not outlive the read it
 * was set in. Table-driven over a socket pair on which nothing (or a
 * line) is written.
 */
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bio.h"
#include "str.h"
#include "unit.h"

static volatile sig_atomic_t signalled;
static int hook_calls;

static void on_alarm(int sig)
{
	signalled = 1;
}

/* Lowers the timeout to 100 ms at once. */
static void lower_now(struct bio *b)
{
	hook_calls++;
	b->timeout_ms = 100;
}

/* Lowers it to 100 ms once the signal came, as smtpd does. */
static void lower_on_signal(struct bio *b)
{
	hook_calls++;
	if (signalled && b->timeout_ms != 100)
		b->timeout_ms = 100;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct hook_case {
	const char *name;
	void (*hook)(struct bio *b);
	int alarm_ms;		/* 0: no signal */
	long long min_ms, max_ms;	/* when the read must time out */
};

static void test_lowered_timeout_ends_the_wait(void)
{
	static const struct hook_case cases[] = {
		{ "no hook: the timeout as set", NULL, 0, 400, 3000 },
		{ "lowered before the wait", lower_now, 0, 50, 350 },
		{ "lowered by a signal mid-wait", lower_on_signal, 150, 200,
		  1500 },
	};
	struct sigaction sa = { .sa_handler = on_alarm };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART: poll sees EINTR */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hook_case *c = &cases[i];
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		struct bio b;
		struct str line;
		bio_init(&b, sv[0], c->hook ? 5000 : 500);
		b.check_timeout = c->hook;
		str_init(&line, 512);
		signalled = 0;
		hook_calls = 0;
		if (c->alarm_ms > 0) {
			struct itimerval it = { .it_value = { 0,
			    c->alarm_ms * 1000 } };
			setitimer(ITIMER_REAL, &it, NULL);
		}
		long long start = now_ms();
		int st = bio_readline(&b, &line, 512, NULL);
		long long took = now_ms() - start;
		printf("# %s: %d after %lld ms\n", c->name, st, took);
		CHECK_INT(st, BIO_TIMEOUT);
		CHECK(took >= c->min_ms && took < c->max_ms);
		CHECK(c->hook == NULL || hook_calls >= 1);
		/* The cap was for that read only: a line that comes now is
		 * read, however long ago the cap ran out. */
		CHECK(write(sv[1], "next\r\n", 6) == 6);
		CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
		CHECK_STR(str_cstr(&line), "next");
		str_free(&line);
		bio_free(&b);
		close(sv[0]);
		close(sv[1]);
	}
}

int main(void)
{
	RUN(test_lowered_timeout_ends_the_wait);
	return unit_done();
}
