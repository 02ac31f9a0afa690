// SPDX-License-Identifier: GPL-2.0
/* Sleeps in the kernel far longer than any timeout. */
#include <time.h>

int main(void)
{
	struct timespec ts = { .tv_sec = 100000 };

	return nanosleep(&ts, NULL);
}
