/* topohub-bench decode: placeholder until the decode benchmark lands. */
#include <stdio.h>

#include "bench.h"

int th__bench_decode(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "topohub-bench decode: not written yet\n");
	return 2;
}
