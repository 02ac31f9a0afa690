// SPDX-License-Identifier: GPL-2.0
/*
 * C glue for running C test programs (the hello selftest) inside the test
 * process: syscall() enters the library kernel and sets errno as libc
 * does, printf() and fprintf() output is kept for the Rust side to read,
 * and a failed assert() ends the program instead of the whole process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LKL_GLUE_OUTPUT_SIZE	65536

/* Set by the Rust side: the kernel instance's lkl_syscall(). */
static long (*glue_syscall_fn)(long nr, long *params);
static char glue_output[LKL_GLUE_OUTPUT_SIZE];
static size_t glue_output_len;
static jmp_buf glue_abort;

long lkl_glue_syscall(long nr, ...)
{
	long params[6];
	va_list ap;
	long ret;
	int i;

	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		params[i] = va_arg(ap, long);
	va_end(ap);

	ret = glue_syscall_fn(nr, params);
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

/* Appends to the output buffer, truncating when it is full. */
static int glue_vappend(const char *fmt, va_list ap)
{
	size_t room = sizeof(glue_output) - glue_output_len;
	int n;

	n = vsnprintf(glue_output + glue_output_len, room, fmt, ap);
	if (n > 0)
		glue_output_len += (size_t)n < room ? (size_t)n : room - 1;
	return n;
}

int lkl_glue_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = glue_vappend(fmt, ap);
	va_end(ap);
	return n;
}

/* stdout and stderr alike: the test reads both. */
int lkl_glue_fprintf(FILE *stream, const char *fmt, ...)
{
	va_list ap;
	int n;

	(void)stream;
	va_start(ap, fmt);
	n = glue_vappend(fmt, ap);
	va_end(ap);
	return n;
}

void lkl_glue_assert_fail(const char *assertion, const char *file,
			  unsigned int line, const char *function)
{
	lkl_glue_printf("%s:%u: %s: Assertion `%s' failed.\n", file, line,
			function, assertion);
	longjmp(glue_abort, 1);
}

int lkl_hello_selftest_main(void);

/*
 * Runs the selftest against @syscall_fn. Returns its exit status, or -1 if
 * an assertion failed; *output points at what it printed.
 */
int lkl_glue_run_selftest(long (*syscall_fn)(long, long *),
			  const char **output, size_t *output_len)
{
	int status;

	glue_syscall_fn = syscall_fn;
	glue_output_len = 0;
	glue_output[0] = '\0';
	if (setjmp(glue_abort) == 0)
		status = lkl_hello_selftest_main();
	else
		status = -1;
	*output = glue_output;
	*output_len = glue_output_len;
	return status;
}
