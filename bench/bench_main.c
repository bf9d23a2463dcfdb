/* topohub-bench: benchmarks. See bench/README.md. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	(void)argv;
	fprintf(stderr, "usage: topohub-bench ring [--json]\n");
	return argc < 2 ? 2 : 0;
}
