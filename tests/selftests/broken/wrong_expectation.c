// SPDX-License-Identifier: GPL-2.0
/*
 * A deliberately failing kselftest_harness test, for lkl-harness's own
 * tests: a struct shorter than struct hello_args is -EINVAL, not 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/hello.h>

#include "../kselftest_harness.h"

TEST(full_size_greets)
{
	struct hello_args args = { .name = (unsigned long)"world" };

	ASSERT_EQ(0, syscall(__NR_hello, &args, sizeof(args)));
}

TEST(short_size_greets)
{
	struct hello_args args = { .name = (unsigned long)"world" };

	/* Wrong: a size below HELLO_ARGS_SIZE_VER0 is -EINVAL. */
	ASSERT_EQ(0, syscall(__NR_hello, &args, sizeof(args) - 1));
}

TEST_HARNESS_MAIN
