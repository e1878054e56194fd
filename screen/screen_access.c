/*
 * screen_access.c - screen_access_list: which clients skip screen's
 * checks (permit) and which are refused at once (reject), by network,
 * as Postfix's postscreen_access_list. The list is read in order and
 * the first entry that decides wins:
 *
 *   permit_mynetworks   a client inside mynetworks is permitted
 *   cidr:/path          a file of "NETWORK ACTION" lines, ACTION one of
 *                       permit, reject, dunno (go on); # comments
 *
 * Read once at start (postern reload starts a new screen). Trusts the
 * files: root's config; a bad line is fatal with its file and number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "screen.h"
#include "sock.h"

struct access_rule {
	char *network;		/* NULL: mynetworks */
	enum screen_access action;
};

static struct access_rule *rules;
static size_t nrules, rules_cap;

static void add_rule(const char *network, enum screen_access action)
{
	if (nrules == rules_cap) {
		rules_cap = rules_cap ? 2 * rules_cap : 16;
		rules = xreallocarray(rules, rules_cap, sizeof(*rules));
	}
	rules[nrules].network = network ? xstrdup(network) : NULL;
	rules[nrules].action = action;
	nrules++;
}

static void read_cidr(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		log_fatal("screen_access_list: cannot open %s: %m", path);
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save = NULL;
		char *net = strtok_r(line, " \t\r\n", &save);
		if (net == NULL)
			continue;
		char *action = strtok_r(NULL, " \t\r\n", &save);
		enum screen_access a;
		if (action && strcmp(action, "permit") == 0)
			a = SCREEN_ACCESS_PERMIT;
		else if (action && strcmp(action, "reject") == 0)
			a = SCREEN_ACCESS_REJECT;
		else if (action && strcmp(action, "dunno") == 0)
			a = SCREEN_ACCESS_DUNNO;
		else
			log_fatal("%s, line %d: want \"NETWORK permit\", "
			    "\"NETWORK reject\" or \"NETWORK dunno\"", path,
			    lineno);
		if (!sock_network_valid(net) || strtok_r(NULL, " \t\r\n",
		    &save) != NULL)
			log_fatal("%s, line %d: \"%s\" is not a network (like "
			    "192.0.2.0/24 or [2001:db8::]/32)", path, lineno,
			    net);
		add_rule(net, a);
	}
	fclose(f);
}

void screen_access_init(void)
{
	for (size_t i = 0; i < cfg.screen_access_list.count; i++) {
		const char *item = cfg.screen_access_list.items[i];
		if (strcmp(item, "permit_mynetworks") == 0)
			add_rule(NULL, SCREEN_ACCESS_PERMIT);
		else if (strncmp(item, "cidr:/", 6) == 0)
			read_cidr(item + 5);
		else
			log_fatal("screen_access_list: \"%s\": want "
			    "permit_mynetworks or cidr:/path", item);
	}
}

enum screen_access screen_access_check(const struct sockaddr *client)
{
	for (size_t i = 0; i < nrules; i++) {
		bool match = rules[i].network == NULL ?
		    sock_addr_in_networks(client, cfg.mynetworks.items,
		    cfg.mynetworks.count) :
		    sock_addr_in_networks(client, &rules[i].network, 1);
		if (match && rules[i].action != SCREEN_ACCESS_DUNNO)
			return rules[i].action;
	}
	return SCREEN_ACCESS_DUNNO;
}
