// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit test of ARCH=lkl's xchg() on SMP: a word that one CPU empties with
 * xchg() while another sets its bits with set_bit() loses no bit.  The
 * arch's interrupt delivery relies on it (irq.c takes the pending mask
 * with xchg() while host timer threads set bits in it); asm-generic's
 * xchg() is a plain load and store, which loses the bits set in between.
 */
#include <kunit/test.h>
#include <linux/bitops.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/kthread.h>
#include <linux/timekeeping.h>

/*
 * Bits set, one at a time, while the other CPU takes them: this many, or
 * as many as fit in LKL_XCHG_TEST_NS of host time on a busy host.
 */
#define LKL_XCHG_TEST_BITS	200000UL
#define LKL_XCHG_TEST_NS	NSEC_PER_SEC
#define LKL_XCHG_TEST_RELAX	64

struct lkl_xchg_test {
	unsigned long word;
	unsigned long set;
	unsigned long taken;
	bool done;
	struct completion setter_done;
	struct completion taker_done;
};

/*
 * Sets each bit of the word in turn, once the taker has taken it.  Both
 * loops relax, which lets the host run the other CPU's thread when both
 * share one host core.
 */
static int lkl_xchg_setter(void *data)
{
	struct lkl_xchg_test *t = data;
	u64 end = ktime_get_ns() + LKL_XCHG_TEST_NS;
	unsigned long i;

	for (i = 0; i < LKL_XCHG_TEST_BITS && ktime_get_ns() < end; i++) {
		unsigned int bit = i % BITS_PER_LONG;

		while (test_bit(bit, &t->word))
			cpu_relax();
		set_bit(bit, &t->word);
	}
	t->set = i;
	WRITE_ONCE(t->done, true);
	complete(&t->setter_done);
	return 0;
}

/*
 * Empties the word with xchg() until the setter is done, counting bits.
 * It relaxes only every LKL_XCHG_TEST_RELAX tries: a tight loop keeps
 * the window that a non-atomic exchange leaves open most of the time.
 */
static int lkl_xchg_taker(void *data)
{
	struct lkl_xchg_test *t = data;
	unsigned long tries = 0;

	while (!READ_ONCE(t->done)) {
		t->taken += hweight_long(xchg(&t->word, 0));
		if (++tries % LKL_XCHG_TEST_RELAX == 0)
			cpu_relax();
	}
	t->taken += hweight_long(xchg(&t->word, 0));
	complete(&t->taker_done);
	return 0;
}

static struct task_struct *lkl_xchg_start(struct kunit *test,
					  int (*fn)(void *), void *data,
					  unsigned int cpu, const char *name)
{
	struct task_struct *task;

	task = kthread_create_on_cpu(fn, data, cpu, name);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(task), "creating %s", name);
	wake_up_process(task);
	return task;
}

static void lkl_xchg_loses_no_concurrent_set_bit_test(struct kunit *test)
{
	struct lkl_xchg_test *t;
	unsigned int first, second;

	if (num_online_cpus() < 2)
		kunit_skip(test, "needs two CPUs, not %u", num_online_cpus());
	first = cpumask_first(cpu_online_mask);
	second = cpumask_next(first, cpu_online_mask);

	t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t);
	init_completion(&t->setter_done);
	init_completion(&t->taker_done);
	lkl_xchg_start(test, lkl_xchg_taker, t, first, "xchg-taker/%u");
	lkl_xchg_start(test, lkl_xchg_setter, t, second, "xchg-setter/%u");
	wait_for_completion(&t->setter_done);
	wait_for_completion(&t->taker_done);

	KUNIT_EXPECT_GT(test, t->set, 0UL);
	KUNIT_EXPECT_EQ_MSG(test, t->taken, t->set,
			    "bits taken with xchg() on CPU %u while CPU %u set them",
			    first, second);
	KUNIT_EXPECT_EQ(test, t->word, 0UL);
}

static struct kunit_case lkl_atomic_test_cases[] = {
	KUNIT_CASE(lkl_xchg_loses_no_concurrent_set_bit_test),
	{}
};

static struct kunit_suite lkl_atomic_test_suite = {
	.name = "lkl-atomic",
	.test_cases = lkl_atomic_test_cases,
};

kunit_test_suite(lkl_atomic_test_suite);
