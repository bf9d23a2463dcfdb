/* topohubctl: the operator's tool. Subcommands are added as components land. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: topohubctl COMMAND [ARGS]\n"
		   "commands:\n"
		   "  help                 this text\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	fprintf(stderr, "topohubctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
