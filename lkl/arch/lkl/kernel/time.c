// SPDX-License-Identifier: GPL-2.0
/*
 * Time: the host's monotonic clock is the clocksource, and every CPU has
 * a clock event device of its own, a host one-shot timer whose expiry
 * raises LKL_TIMER_IRQ on that CPU.  With NO_HZ_IDLE an idle CPU stops its
 * tick, so an idle kernel leaves its host threads asleep.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/bits.h>
#include <linux/clockchips.h>
#include <linux/clocksource.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/math64.h>
#include <linux/percpu.h>
#include <linux/sched/clock.h>
#include <linux/timekeeping.h>
#include <asm/cpu.h>
#include <asm/irq.h>

#define LKL_CLOCK_KHZ		(NSEC_PER_SEC / 1000)
#define LKL_MIN_DELTA_NS	1000UL

static DEFINE_PER_CPU(struct clock_event_device, lkl_clockevents);
static u64 boot_ns;

/**
 * sched_clock() - nanoseconds since boot, from the host clock
 *
 * Return: the scheduler clock.
 */
unsigned long long sched_clock(void)
{
	if (!boot_ns)
		return 0;
	return lkl_ops->time_ns() - boot_ns;
}

/**
 * read_persistent_clock64() - the host's wall clock, for boot time
 * @ts: filled with the current real time
 */
void read_persistent_clock64(struct timespec64 *ts)
{
	*ts = ns_to_timespec64(lkl_ops->wall_ns());
}

static u64 lkl_clock_read(struct clocksource *cs)
{
	return lkl_ops->time_ns();
}

/*
 * The host clock counts nanoseconds: the mult and shift that
 * clocksource_register_khz() computes for it, set beforehand so that
 * timekeeping can start on it (clocksource_default_clock()).
 */
#define LKL_CLOCK_SHIFT		23
#define LKL_CLOCK_MULT		BIT(LKL_CLOCK_SHIFT)

static struct clocksource lkl_clocksource = {
	.name = "lkl",
	.rating = 499,
	.read = lkl_clock_read,
	.flags = CLOCK_SOURCE_IS_CONTINUOUS,
	.mask = CLOCKSOURCE_MASK(64),
	.mult = LKL_CLOCK_MULT,
	.shift = LKL_CLOCK_SHIFT,
};

/**
 * clocksource_default_clock() - the clocksource timekeeping starts on
 *
 * The host clock rather than jiffies: it works from the first instruction,
 * and the kernel then never switches clocksources, which on SMP takes a
 * stop_machine(), a wait for every CPU's stopper thread, in the middle of
 * the boot.
 *
 * Return: the host clocksource.
 */
struct clocksource * __init clocksource_default_clock(void)
{
	return &lkl_clocksource;
}

static struct lkl_timer *lkl_timer_of(struct clock_event_device *evt)
{
	return lkl_cpus[cpumask_first(evt->cpumask)].timer;
}

static int lkl_timer_next_event(unsigned long delta,
				struct clock_event_device *evt)
{
	return lkl_ops->timer_set_oneshot(lkl_timer_of(evt), delta);
}

static int lkl_timer_shutdown(struct clock_event_device *evt)
{
	lkl_ops->timer_cancel(lkl_timer_of(evt));
	return 0;
}

static irqreturn_t lkl_timer_irq(int irq, void *dev_id)
{
	struct clock_event_device *evt = this_cpu_ptr(&lkl_clockevents);

	evt->event_handler(evt);
	return IRQ_HANDLED;
}

/*
 * The host timer of a CPU expired: raise its interrupt, and run it on this
 * host thread if the CPU is free.
 */
static void lkl_timer_fn(void *arg)
{
	struct lkl_cpu *c = arg;

	__atomic_fetch_or(&c->irqs, BIT(LKL_TIMER_IRQ), __ATOMIC_SEQ_CST);
	if (!lkl_gate_enter())
		return;
	if (lkl_cpu_try_take(c))
		lkl_cpu_interrupt(c, NULL, NULL);
	lkl_gate_exit();
}

/**
 * lkl_time_init_cpu() - give the calling CPU its clock event device
 * @cpu: the CPU, which the caller holds with interrupts disabled
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_time_init_cpu(unsigned int cpu)
{
	struct clock_event_device *evt = per_cpu_ptr(&lkl_clockevents, cpu);
	struct lkl_cpu *c = &lkl_cpus[cpu];

	c->timer = lkl_ops->timer_alloc(lkl_timer_fn, c);
	if (!c->timer)
		return -ENOMEM;

	evt->name = "lkl";
	evt->features = CLOCK_EVT_FEAT_ONESHOT;
	evt->set_next_event = lkl_timer_next_event;
	evt->set_state_shutdown = lkl_timer_shutdown;
	evt->set_state_oneshot_stopped = lkl_timer_shutdown;
	evt->rating = 499;
	evt->irq = LKL_TIMER_IRQ;
	evt->cpumask = cpumask_of(cpu);
	clockevents_config_and_register(evt, NSEC_PER_SEC, LKL_MIN_DELTA_NS,
					ULONG_MAX);
	return 0;
}

/**
 * time_init() - register the host clock and the boot CPU's timer
 */
void __init time_init(void)
{
	int ret;

	boot_ns = lkl_ops->time_ns();

	ret = clocksource_register_khz(&lkl_clocksource, LKL_CLOCK_KHZ);
	if (ret)
		pr_err("cannot register clocksource: %d\n", ret);
	/* Timekeeping has been running on these since timekeeping_init(). */
	WARN_ON(lkl_clocksource.mult != LKL_CLOCK_MULT ||
		lkl_clocksource.shift != LKL_CLOCK_SHIFT);

	ret = request_irq(LKL_TIMER_IRQ, lkl_timer_irq,
			  IRQF_TIMER | IRQF_PERCPU, "timer", NULL);
	if (ret)
		panic("lkl: cannot request the timer interrupt: %d\n", ret);

	if (lkl_time_init_cpu(smp_processor_id()))
		panic("lkl: cannot allocate the host timer\n");
}

/**
 * lkl_time_cleanup() - stop and free the host timers after halt
 */
void lkl_time_cleanup(void)
{
	struct lkl_cpu *c;

	for (c = lkl_cpus; c < lkl_cpus + nr_cpu_ids; c++) {
		if (c->timer)
			lkl_ops->timer_free(c->timer);
		c->timer = NULL;
	}
}

/**
 * calibrate_delay() - nothing to calibrate: delays use the host clock
 */
void calibrate_delay(void)
{
	loops_per_jiffy = LKL_CLOCK_KHZ * 1000 / HZ;
}

#if IS_ENABLED(CONFIG_LKL_DELAY_KUNIT_TEST)
/*
 * The delay test's task: its delays are not waited, only recorded in
 * lkl_delay_test_ns, so that the test checks what udelay() and ndelay()
 * ask of the host without timing anything.
 */
static struct task_struct *lkl_delay_test_task;
static u64 lkl_delay_test_ns;
#endif

/* Busy-waits @ns nanoseconds of host time, letting interrupts in. */
static void lkl_spin_ns(u64 ns)
{
	u64 end;

#if IS_ENABLED(CONFIG_LKL_DELAY_KUNIT_TEST)
	if (READ_ONCE(lkl_delay_test_task) == current) {
		lkl_delay_test_ns = ns;
		return;
	}
#endif
	end = lkl_ops->time_ns() + ns;

	while (lkl_ops->time_ns() < end)
		cpu_relax();
}

/**
 * __ndelay() - busy-wait a number of nanoseconds
 * @nsecs: how long
 */
void __ndelay(unsigned long nsecs)
{
	lkl_spin_ns(nsecs);
}

/**
 * __udelay() - busy-wait a number of microseconds
 * @usecs: how long
 */
void __udelay(unsigned long usecs)
{
	lkl_spin_ns((u64)usecs * NSEC_PER_USEC);
}

/**
 * __const_udelay() - busy-wait for udelay() and ndelay() of a constant
 * @xloops: the delay in units of 2^-32 seconds (rounded up by the callers:
 *	udelay(n) passes n * 0x10c7, ndelay(n) passes n * 5)
 */
void __const_udelay(unsigned long xloops)
{
	lkl_spin_ns(mul_u64_u32_shr(xloops, NSEC_PER_SEC, 32));
}

/**
 * __delay() - busy-wait a number of loops
 * @loops: how long, in loops_per_jiffy units: one loop is a nanosecond
 */
void __delay(unsigned long loops)
{
	lkl_spin_ns(loops);
}

#if IS_ENABLED(CONFIG_LKL_DELAY_KUNIT_TEST)
#include "time_kunit.c"
#endif
