/*
 * test_daemon_scoreboard.c - a worker's side of the busy/idle scoreboard
 * (mail/daemon_scoreboard.c): which changes of state it says master must
 * hear at once, and that it takes no slot from a page it cannot trust
 * the layout of. The page is a real sealed memfd passed as master does.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon_scoreboard.h"
#include "log.h"
#include "unit.h"

#define NSLOTS 4
#define FREE SCOREBOARD_FREE
#define IDLE SCOREBOARD_IDLE
#define BUSY SCOREBOARD_BUSY

static struct scoreboard_page *page;	/* the test's view, as master's */

static int make_page(size_t nslots, uint32_t magic,
    struct scoreboard_page **view)
{
	size_t size = daemon_scoreboard_size(nslots);
	int fd = memfd_create("test-scoreboard", MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	*view = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*view == MAP_FAILED)
		return -1;
	(*view)->head.magic = magic;
	return fd;
}

static void pass_fd(int fd)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", fd);
	setenv(SCOREBOARD_ENV, num, 1);
}

/* Runs first: attach takes the first free slot, as pid, idle. */
static void test_attach_takes_a_free_slot(void)
{
	int fd = make_page(NSLOTS, SCOREBOARD_MAGIC, &page);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	/* Slot 0 is someone else's. */
	atomic_store(&page->slot[0].pid, 4242);
	atomic_store(&page->slot[0].state, SCOREBOARD_BUSY);
	pass_fd(fd);
	CHECK(daemon_scoreboard_attach(1001));
	CHECK_INT(atomic_load(&page->slot[1].pid), 1001);
	CHECK_INT(atomic_load(&page->slot[1].state), SCOREBOARD_IDLE);
	CHECK(getenv(SCOREBOARD_ENV) == NULL);
	/* The descriptor is closed once mapped. */
	CHECK(fcntl(fd, F_GETFD) < 0);
}

/* Going busy: tell master when fewer than max(min_idle, 1) others are
 * idle or starting. Slots: 0 another worker, 1 ours, 2 and 3 others. */
static void test_busy_tells_master_below_min_idle(void)
{
	static const struct {
		int min_idle, starting, s0, s2, s3;
		bool tell;
	} rows[] = {
		{ 2, 0, IDLE, IDLE, FREE, false },
		{ 2, 0, IDLE, BUSY, FREE, true },
		{ 2, 1, IDLE, BUSY, FREE, false },
		{ 2, 0, BUSY, BUSY, BUSY, true },
		/* process_min_idle 0: still told when none is left (full). */
		{ 0, 0, BUSY, BUSY, BUSY, true },
		{ 0, 0, IDLE, BUSY, BUSY, false },
		{ 3, 0, IDLE, IDLE, IDLE, false },
		/* Garbage in a state is not idle. */
		{ 1, 0, 77, -5, BUSY, true },
		/* Garbage in the hints: bounded by the slots. */
		{ 2000000000, 0, IDLE, IDLE, IDLE, true },
		{ 2, -2000000000, IDLE, IDLE, IDLE, false },
	};
	if (page == NULL)
		return;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		atomic_store(&page->head.min_idle, rows[i].min_idle);
		atomic_store(&page->head.starting, rows[i].starting);
		atomic_store(&page->slot[0].state, rows[i].s0);
		atomic_store(&page->slot[2].state, rows[i].s2);
		atomic_store(&page->slot[3].state, rows[i].s3);
		bool tell = daemon_scoreboard_busy();
		if (tell != rows[i].tell)
			printf("# row %zu\n", i);
		CHECK(tell == rows[i].tell);
		CHECK_INT(atomic_load(&page->slot[1].state), SCOREBOARD_BUSY);
	}
}

/* Going idle: tell master only while it marked the service full. */
static void test_idle_tells_master_when_full(void)
{
	if (page == NULL)
		return;
	atomic_store(&page->head.want_idle, 0);
	CHECK(!daemon_scoreboard_idle());
	CHECK_INT(atomic_load(&page->slot[1].state), SCOREBOARD_IDLE);
	atomic_store(&page->head.want_idle, 1);
	CHECK(daemon_scoreboard_idle());
	atomic_store(&page->head.want_idle, 0);
}

/* A page of another layout, none passed, or a bad number: not used. */
static void test_no_page_no_slot(void)
{
	struct scoreboard_page *other;
	int fd = make_page(NSLOTS, 0xdeadbeef, &other);
	CHECK(fd >= 0);
	pass_fd(fd);
	CHECK(!daemon_scoreboard_attach(2002));
	CHECK_INT(atomic_load(&other->slot[0].pid), 0);
	unsetenv(SCOREBOARD_ENV);
	CHECK(!daemon_scoreboard_attach(2002));
	setenv(SCOREBOARD_ENV, "12x", 1);
	CHECK(!daemon_scoreboard_attach(2002));
	setenv(SCOREBOARD_ENV, "1", 1);	/* stdout is no page */
	CHECK(!daemon_scoreboard_attach(2002));
}

/* Every slot taken: no slot to take. */
static void test_full_page(void)
{
	struct scoreboard_page *full;
	int fd = make_page(2, SCOREBOARD_MAGIC, &full);
	CHECK(fd >= 0);
	atomic_store(&full->slot[0].pid, 1);
	atomic_store(&full->slot[1].pid, 2);
	pass_fd(fd);
	CHECK(!daemon_scoreboard_attach(3003));
}

int main(void)
{
	log_init("test", LOG_DEST_STDERR);
	RUN(test_attach_takes_a_free_slot);
	RUN(test_busy_tells_master_below_min_idle);
	RUN(test_idle_tells_master_when_full);
	RUN(test_no_page_no_slot);
	RUN(test_full_page);
	return unit_done();
}
