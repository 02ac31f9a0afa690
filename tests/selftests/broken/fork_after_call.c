// SPDX-License-Identifier: GPL-2.0
/*
 * Forks after a system call: the child has no kernel, which the runner
 * must report instead of letting the program pass.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "../kselftest.h"

int main(void)
{
	int status;
	pid_t child;

	ksft_print_header();
	ksft_set_plan(1);
	if (getuid() != 0)
		ksft_exit_fail_msg("getuid() is not 0 in the library kernel\n");
	child = fork();
	if (child == 0)
		_exit(getuid() == 0 ? 0 : 1);
	waitpid(child, &status, 0);
	ksft_test_result_pass("forked\n");
	ksft_finished();
}
