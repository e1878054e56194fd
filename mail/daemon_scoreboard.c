/*
 * daemon_scoreboard.c - a worker's side of its service's scoreboard
 * (daemon_scoreboard.h): take a slot, mark it busy or idle around each
 * connection, and say when master must hear of it on the status pipe.
 *
 * Trusts: the descriptor master passed (its size is sealed); the page's
 * contents only as hints, since every worker of the service can write
 * them: the number of slots comes from the size, never from the page.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_scoreboard.h"
#include "log.h"

static struct scoreboard_page *page;
static size_t nslots;
static struct scoreboard_slot *mine;

static int inherited_fd(void)
{
	const char *v = getenv(SCOREBOARD_ENV);
	if (v == NULL)
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	if (*end != '\0' || fd < 3 || fd > 1024)
		return -1;
	return (int)fd;
}

bool daemon_scoreboard_attach(int32_t pid)
{
	int fd = inherited_fd();
	unsetenv(SCOREBOARD_ENV);
	if (fd < 0)
		return false;
	struct stat st;
	void *p = MAP_FAILED;
	if (fstat(fd, &st) == 0 &&
	    st.st_size >= (off_t)daemon_scoreboard_size(1))
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		log_warning("scoreboard: cannot map it: every busy and idle "
		    "goes to master");
		return false;
	}
	struct scoreboard_page *pg = p;
	if (pg->head.magic != SCOREBOARD_MAGIC) {
		log_warning("scoreboard of another layout: not used");
		munmap(p, (size_t)st.st_size);
		return false;
	}
	size_t n = ((size_t)st.st_size - sizeof(struct scoreboard_head)) /
	    sizeof(struct scoreboard_slot);
	if (n > SCOREBOARD_MAX_SLOTS)
		n = SCOREBOARD_MAX_SLOTS;
	struct scoreboard_slot *taken = NULL;
	for (size_t i = 0; i < n && taken == NULL; i++) {
		int32_t free_pid = 0;
		if (atomic_compare_exchange_strong(&pg->slot[i].pid,
		    &free_pid, pid))
			taken = &pg->slot[i];
	}
	if (taken == NULL) {
		log_warning("scoreboard: no free slot: every busy and idle "
		    "goes to master");
		munmap(p, (size_t)st.st_size);
		return false;
	}
	atomic_store(&taken->state, SCOREBOARD_IDLE);
	page = pg;
	nslots = n;
	mine = taken;
	return true;
}

bool daemon_scoreboard_busy(void)
{
	if (mine == NULL)
		return true;
	atomic_store(&mine->state, SCOREBOARD_BUSY);
	/* Idle or starting processes left, ourselves not counted: the
	 * others' slots may be a moment old, which costs at most a wake-up
	 * too many or one master's timer finds. */
	long idle = atomic_load_explicit(&page->head.starting,
	    memory_order_relaxed);
	long want = atomic_load_explicit(&page->head.min_idle,
	    memory_order_relaxed);
	/* Hints: bounded by the slots, whatever they say. */
	if (idle < 0 || idle > (long)nslots)
		idle = 0;
	if (want > (long)nslots)
		want = (long)nslots;
	if (want < 1)
		want = 1;	/* none left: master may have to mark it full */
	for (size_t i = 0; i < nslots && idle < want; i++)
		if (&page->slot[i] != mine &&
		    atomic_load_explicit(&page->slot[i].state,
		    memory_order_relaxed) == SCOREBOARD_IDLE)
			idle++;
	return idle < want;
}

bool daemon_scoreboard_idle(void)
{
	if (mine == NULL)
		return true;
	/* Sequentially consistent store, then load: master stores
	 * want_idle and then reads the slots, so one of us sees the
	 * other (master_scoreboard.c). */
	atomic_store(&mine->state, SCOREBOARD_IDLE);
	return atomic_load(&page->head.want_idle) != 0;
}
