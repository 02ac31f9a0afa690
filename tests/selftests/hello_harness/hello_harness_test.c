// SPDX-License-Identifier: GPL-2.0
/*
 * hello(2) tested with kselftest_harness.h: plain tests, a fixture with
 * setup and teardown, and two tests that show each test has a kernel of
 * its own (the harness forks a process per test; each boots a kernel).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/hello.h>

#include "../kselftest_harness.h"

static long hello(const char *name, unsigned long long flags)
{
	struct hello_args args = {
		.flags = flags,
		.name = (unsigned long)name,
	};

	return syscall(__NR_hello, &args, sizeof(args));
}

TEST(greets_a_static_name)
{
	ASSERT_EQ(0, hello("world", 0));
}

TEST(unknown_flag_is_einval)
{
	ASSERT_EQ(-1, hello("world", 0x80000000));
	ASSERT_EQ(EINVAL, errno);
}

TEST(null_name_is_efault)
{
	ASSERT_EQ(-1, hello(NULL, 0));
	ASSERT_EQ(EFAULT, errno);
}

TEST(a_leaves_a_file_behind)
{
	int fd = open("/tmp/left-behind", O_CREAT | O_EXCL | O_WRONLY, 0600);

	ASSERT_LE(0, fd);
}

TEST(b_finds_no_file_left_behind)
{
	ASSERT_EQ(-1, open("/tmp/left-behind", O_RDONLY));
	ASSERT_EQ(ENOENT, errno);
}

FIXTURE(named) {
	char name[64];
	int fd;
};

FIXTURE_SETUP(named)
{
	strcpy(self->name, "fixture");
	self->fd = open("/tmp/named", O_CREAT | O_EXCL | O_RDWR, 0600);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(7, write(self->fd, self->name, 7));
}

FIXTURE_TEARDOWN(named)
{
	EXPECT_EQ(0, close(self->fd));
	EXPECT_EQ(0, unlink("/tmp/named"));
}

TEST_F(named, greets_the_name_read_back)
{
	char buf[64] = { 0 };

	ASSERT_EQ(7, pread(self->fd, buf, sizeof(buf) - 1, 0));
	ASSERT_STREQ(self->name, buf);
	ASSERT_EQ(0, hello(buf, HELLO_FLAG_LOUD));
}

TEST_F(named, loud_greeting)
{
	ASSERT_EQ(0, hello(self->name, HELLO_FLAG_LOUD));
}

TEST_HARNESS_MAIN
