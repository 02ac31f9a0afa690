// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of ARCH=lkl's delays: udelay() and ndelay(), with a
 * constant or a variable argument, ask the host to wait at least what
 * was asked, and not a thousand times more.  The test's own delays are
 * recorded instead of waited (lkl_spin_ns()), so nothing here is timed.
 * Included by time.c, whose recording hook it uses.
 */
#include <kunit/test.h>

/* What the delay macro that @delay expands to asked the host to wait. */
#define lkl_delay_asked(test, delay)					\
({									\
	WRITE_ONCE(lkl_delay_test_task, current);			\
	lkl_delay_test_ns = U64_MAX;					\
	delay;								\
	WRITE_ONCE(lkl_delay_test_task, NULL);				\
	KUNIT_EXPECT_NE_MSG(test, lkl_delay_test_ns, U64_MAX,		\
			    "%s did not reach the host", #delay);	\
	lkl_delay_test_ns;						\
})

/*
 * Each delay must be at least what it asks for, and may exceed it by the
 * rounding up of the callers' constants: under 1 ns per microsecond asked,
 * under 17 ns per 100 ns asked.
 */
static void lkl_delay_expect(struct kunit *test, const char *what, u64 asked,
			     u64 ns)
{
	KUNIT_EXPECT_GE_MSG(test, ns, asked, "%s", what);
	KUNIT_EXPECT_LE_MSG(test, ns, asked + asked / 6 + 1, "%s", what);
}

static void lkl_udelay_of_a_constant_test(struct kunit *test)
{
	lkl_delay_expect(test, "udelay(1)", 1000,
			 lkl_delay_asked(test, udelay(1)));
	lkl_delay_expect(test, "udelay(10)", 10 * 1000,
			 lkl_delay_asked(test, udelay(10)));
	lkl_delay_expect(test, "udelay(1000)", 1000 * 1000,
			 lkl_delay_asked(test, udelay(1000)));
	lkl_delay_expect(test, "udelay(19999)", 19999ULL * 1000,
			 lkl_delay_asked(test, udelay(19999)));
}

static void lkl_ndelay_of_a_constant_test(struct kunit *test)
{
	lkl_delay_expect(test, "ndelay(1)", 1,
			 lkl_delay_asked(test, ndelay(1)));
	lkl_delay_expect(test, "ndelay(100)", 100,
			 lkl_delay_asked(test, ndelay(100)));
	lkl_delay_expect(test, "ndelay(5000)", 5000,
			 lkl_delay_asked(test, ndelay(5000)));
}

static void lkl_delay_of_a_variable_test(struct kunit *test)
{
	/* Not constants to the compiler: __udelay() and __ndelay(). */
	unsigned long usecs = 250, nsecs = 750;

	OPTIMIZER_HIDE_VAR(usecs);
	OPTIMIZER_HIDE_VAR(nsecs);
	lkl_delay_expect(test, "udelay(usecs)", 250 * 1000,
			 lkl_delay_asked(test, udelay(usecs)));
	lkl_delay_expect(test, "ndelay(nsecs)", 750,
			 lkl_delay_asked(test, ndelay(nsecs)));
}

static struct kunit_case lkl_delay_test_cases[] = {
	KUNIT_CASE(lkl_udelay_of_a_constant_test),
	KUNIT_CASE(lkl_ndelay_of_a_constant_test),
	KUNIT_CASE(lkl_delay_of_a_variable_test),
	{}
};

static struct kunit_suite lkl_delay_test_suite = {
	.name = "lkl-delay",
	.test_cases = lkl_delay_test_cases,
};

kunit_test_suite(lkl_delay_test_suite);
