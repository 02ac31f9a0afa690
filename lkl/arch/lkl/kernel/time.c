// SPDX-License-Identifier: GPL-2.0
/*
 * Time: the host's monotonic clock is the clocksource, a host one-shot
 * timer is the clock event device, and its expiry raises LKL_TIMER_IRQ.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/clockchips.h>
#include <linux/clocksource.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/sched/clock.h>
#include <linux/timekeeping.h>
#include <asm/cpu.h>
#include <asm/irq.h>

#define LKL_CLOCK_KHZ		(NSEC_PER_SEC / 1000)
#define LKL_MIN_DELTA_NS	1000UL

static struct lkl_timer *timer;
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

static struct clocksource lkl_clocksource = {
	.name = "lkl",
	.rating = 499,
	.read = lkl_clock_read,
	.flags = CLOCK_SOURCE_IS_CONTINUOUS,
	.mask = CLOCKSOURCE_MASK(64),
};

static int lkl_timer_next_event(unsigned long delta,
				struct clock_event_device *evt)
{
	return lkl_ops->timer_set_oneshot(timer, delta);
}

static int lkl_timer_shutdown(struct clock_event_device *evt)
{
	lkl_ops->timer_cancel(timer);
	return 0;
}

static struct clock_event_device lkl_clockevent = {
	.name = "lkl",
	.features = CLOCK_EVT_FEAT_ONESHOT,
	.set_next_event = lkl_timer_next_event,
	.set_state_shutdown = lkl_timer_shutdown,
	.set_state_oneshot_stopped = lkl_timer_shutdown,
	.rating = 499,
	.irq = LKL_TIMER_IRQ,
};

static irqreturn_t lkl_timer_irq(int irq, void *dev_id)
{
	lkl_clockevent.event_handler(&lkl_clockevent);
	return IRQ_HANDLED;
}

static void lkl_timer_fn(void *arg)
{
	lkl_trigger_irq(LKL_TIMER_IRQ);
}

/**
 * time_init() - register the host clock and timer
 */
void __init time_init(void)
{
	int ret;

	boot_ns = lkl_ops->time_ns();

	ret = clocksource_register_khz(&lkl_clocksource, LKL_CLOCK_KHZ);
	if (ret)
		pr_err("cannot register clocksource: %d\n", ret);

	timer = lkl_ops->timer_alloc(lkl_timer_fn, NULL);
	if (!timer)
		panic("lkl: cannot allocate the host timer\n");

	ret = request_irq(LKL_TIMER_IRQ, lkl_timer_irq, IRQF_TIMER, "timer",
			  NULL);
	if (ret)
		panic("lkl: cannot request the timer interrupt: %d\n", ret);

	lkl_clockevent.cpumask = cpumask_of(0);
	clockevents_config_and_register(&lkl_clockevent, NSEC_PER_SEC,
					LKL_MIN_DELTA_NS, ULONG_MAX);
}

/**
 * lkl_time_cleanup() - stop and free the host timer after halt
 */
void lkl_time_cleanup(void)
{
	lkl_ops->timer_free(timer);
	timer = NULL;
}

/**
 * calibrate_delay() - nothing to calibrate: delays use the host clock
 */
void calibrate_delay(void)
{
	loops_per_jiffy = LKL_CLOCK_KHZ * 1000 / HZ;
}

static void lkl_spin_ns(u64 ns)
{
	u64 end = lkl_ops->time_ns() + ns;

	while (lkl_ops->time_ns() < end)
		cpu_relax();
}

void __ndelay(unsigned long nsecs)
{
	lkl_spin_ns(nsecs);
}

void __udelay(unsigned long usecs)
{
	lkl_spin_ns((u64)usecs * NSEC_PER_USEC);
}

void __const_udelay(unsigned long xloops)
{
	lkl_spin_ns(xloops / 0x10c7UL);
}

void __delay(unsigned long loops)
{
	lkl_spin_ns(loops);
}
