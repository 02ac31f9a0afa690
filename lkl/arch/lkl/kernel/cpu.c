// SPDX-License-Identifier: GPL-2.0
/*
 * The one CPU of the library kernel.
 *
 * Kernel code runs only on the host thread that owns the CPU.  Ownership
 * is not a plain mutex: __switch_to() moves it from one host thread to
 * another, a system call takes it on the caller's thread and the timer
 * takes it on its own thread to run an interrupt.  A host mutex guards the
 * owner, a recursion count, the number of threads waiting and whether an
 * interrupt is waiting for the owner to run it.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/cpu.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/interrupt.h>
#include <linux/sched/stat.h>
#include <asm/cpu.h>

static bool lkl_should_resched(void)
{
	if (need_resched())
		return true;
	/* A host task's thread is leaving: do not strand runnable tasks. */
	return test_thread_flag(TIF_HOST_THREAD) && nr_running() > 1;
}

static struct {
	struct lkl_mutex *lock;
	/* Threads blocked in lkl_cpu_get() wait here. */
	struct lkl_sem *sem;
	/* The idle task's host thread waits here while the CPU is free. */
	struct lkl_sem *idle_sem;
	unsigned long owner;
	unsigned int count;
	unsigned int sleepers;
	/* A sleeper was woken and has not looked at the CPU yet. */
	bool waking;
	bool irqs_pending;
	bool shutdown;
} cpu;

/**
 * lkl_cpu_init() - allocate the CPU's host objects
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_cpu_init(void)
{
	cpu.lock = lkl_ops->mutex_alloc();
	cpu.sem = lkl_ops->sem_alloc(0);
	cpu.idle_sem = lkl_ops->sem_alloc(0);
	if (!cpu.lock || !cpu.sem || !cpu.idle_sem)
		return -ENOMEM;
	return 0;
}

/**
 * lkl_cpu_get() - take the CPU on the calling host thread
 *
 * Waits while another thread owns it; nests if this thread already does.
 * Only one waiter at a time is woken to retry (see lkl_cpu_put()), so a
 * busy CPU costs its waiters no host wake-ups beyond that one.
 *
 * Return: 0, or -ESHUTDOWN once the kernel has been halted.
 */
int lkl_cpu_get(void)
{
	unsigned long self = lkl_ops->thread_self();

	lkl_ops->mutex_enter(cpu.lock);
	while (cpu.owner && cpu.owner != self && !cpu.shutdown) {
		cpu.sleepers++;
		lkl_ops->mutex_leave(cpu.lock);
		lkl_ops->sem_down(cpu.sem);
		lkl_ops->mutex_enter(cpu.lock);
		cpu.sleepers--;
		cpu.waking = false;
	}
	if (cpu.shutdown) {
		lkl_ops->mutex_leave(cpu.lock);
		return -ESHUTDOWN;
	}
	cpu.owner = self;
	cpu.count++;
	lkl_ops->mutex_leave(cpu.lock);
	return 0;
}

/**
 * lkl_cpu_change_owner() - record that another host thread now runs
 * @owner: the host thread of the task being switched to
 */
void lkl_cpu_change_owner(unsigned long owner)
{
	lkl_ops->mutex_enter(cpu.lock);
	cpu.owner = owner;
	lkl_ops->mutex_leave(cpu.lock);
}

/**
 * lkl_cpu_wakeup_idle() - let the idle task's host thread look for work
 */
void lkl_cpu_wakeup_idle(void)
{
	lkl_ops->sem_up(cpu.idle_sem);
}

/**
 * lkl_cpu_put() - release the CPU taken by lkl_cpu_get()
 *
 * Interrupts that arrived while the CPU was held run first.  If a task is
 * then waiting to run, the current task must make way: a host task (whose
 * own thread is outside the kernel) is descheduled right here, while the
 * idle task's thread is woken to schedule, since only it may run as idle.
 */
void lkl_cpu_put(void)
{
	lkl_ops->mutex_enter(cpu.lock);
	while (cpu.irqs_pending && !irqs_disabled()) {
		cpu.irqs_pending = false;
		lkl_ops->mutex_leave(cpu.lock);
		lkl_run_irqs();
		lkl_ops->mutex_enter(cpu.lock);
	}

	if (cpu.count == 1 && !in_interrupt() && lkl_should_resched()) {
		if (test_thread_flag(TIF_HOST_THREAD)) {
			/* The CPU goes with the switch. */
			lkl_ops->mutex_leave(cpu.lock);
			lkl_deschedule_host_task();
			return;
		}
		if (is_idle_task(current))
			lkl_cpu_wakeup_idle();
	}

	if (--cpu.count == 0) {
		cpu.owner = 0;
		if (cpu.sleepers && !cpu.waking) {
			cpu.waking = true;
			lkl_ops->sem_up(cpu.sem);
		}
	}
	lkl_ops->mutex_leave(cpu.lock);
}

/**
 * lkl_cpu_try_run_irq() - take the CPU to run an interrupt, if it is free
 * @irq: the interrupt
 *
 * Return: true if the caller now owns the CPU and must run @irq and then
 * call lkl_cpu_put(); false if @irq was left pending for the owner.
 */
int lkl_cpu_try_run_irq(int irq)
{
	unsigned long self = lkl_ops->thread_self();
	int ret = 0;

	lkl_ops->mutex_enter(cpu.lock);
	if (cpu.shutdown) {
		ret = 0;
	} else if (!cpu.owner) {
		cpu.owner = self;
		cpu.count = 1;
		ret = 1;
	} else {
		cpu.irqs_pending = true;
	}
	lkl_ops->mutex_leave(cpu.lock);
	return ret;
}

/**
 * lkl_cpu_irqs_pending() - whether the owner has interrupts to run
 *
 * Return: true if an interrupt arrived while the CPU was held.
 */
bool lkl_cpu_irqs_pending(void)
{
	bool pending;

	lkl_ops->mutex_enter(cpu.lock);
	pending = cpu.irqs_pending;
	cpu.irqs_pending = false;
	lkl_ops->mutex_leave(cpu.lock);
	return pending;
}

/**
 * lkl_cpu_shutdown() - refuse the CPU to every later caller
 */
void lkl_cpu_shutdown(void)
{
	unsigned int i;

	lkl_ops->mutex_enter(cpu.lock);
	cpu.shutdown = true;
	for (i = 0; i < cpu.sleepers; i++)
		lkl_ops->sem_up(cpu.sem);
	lkl_ops->mutex_leave(cpu.lock);
}

/**
 * lkl_cpu_shutting_down() - whether lkl_cpu_shutdown() was called
 *
 * Return: true once the kernel is halting.
 */
bool lkl_cpu_shutting_down(void)
{
	return READ_ONCE(cpu.shutdown);
}

/**
 * lkl_cpu_cleanup() - free the CPU's host objects after halt
 */
void lkl_cpu_cleanup(void)
{
	lkl_ops->sem_free(cpu.idle_sem);
	lkl_ops->sem_free(cpu.sem);
	lkl_ops->mutex_free(cpu.lock);
}

/**
 * arch_cpu_idle() - wait for work while nothing is runnable
 *
 * Entered and left with interrupts disabled (default_idle_call() enables
 * them afterwards).  Pending interrupts run first; then the CPU is
 * released so that system calls and timer interrupts can take it, and
 * the idle thread sleeps until one of them leaves a task to schedule.
 */
void arch_cpu_idle(void)
{
	if (lkl_cpu_shutting_down())
		lkl_idle_halt();

	raw_local_irq_enable();
	if (!need_resched()) {
		lkl_cpu_put();
		lkl_ops->sem_down(cpu.idle_sem);
		lkl_cpu_get();
	}
	raw_local_irq_disable();
}

/**
 * lkl_cpu_relax() - a busy-wait iteration: let pending interrupts in
 */
void lkl_cpu_relax(void)
{
	barrier();
	if (!irqs_disabled() && READ_ONCE(cpu.irqs_pending))
		lkl_run_irqs();
}
