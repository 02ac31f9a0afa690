// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit test of ARCH=lkl's scheduling topology: the CPUs are threads of
 * one host process, so they share the host's caches, and the scheduler
 * must know it (CONFIG_SCHED_MC, asm/topology.h).  Without a domain that
 * shares the last-level cache, a wakeup on another CPU always goes
 * through an interrupt to that CPU, and a woken task is never moved to
 * an idle CPU of the domain.
 */
#include <kunit/test.h>
#include <linux/cpumask.h>
#include <linux/sched/topology.h>

static void lkl_cpus_share_cache_test(struct kunit *test)
{
	unsigned int a, b;

	if (num_online_cpus() < 2)
		kunit_skip(test, "needs two CPUs, not %u", num_online_cpus());
	for_each_online_cpu(a)
		for_each_online_cpu(b)
			KUNIT_EXPECT_TRUE_MSG(test, cpus_share_cache(a, b),
					      "CPUs %u and %u of %u", a, b,
					      num_online_cpus());
}

static struct kunit_case lkl_sched_test_cases[] = {
	KUNIT_CASE(lkl_cpus_share_cache_test),
	{}
};

static struct kunit_suite lkl_sched_test_suite = {
	.name = "lkl-sched",
	.test_cases = lkl_sched_test_cases,
};

kunit_test_suite(lkl_sched_test_suite);
