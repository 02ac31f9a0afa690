// SPDX-License-Identifier: GPL-2.0
/*
 * Several CPUs.  Each CPU is a token that host threads pass around (cpu.c)
 * and an idle task with a host thread of its own.  A secondary CPU comes up
 * when __cpu_up() gives its idle task a thread, which takes the CPU and
 * enters the idle loop.  Interprocessor interrupts are bits raised for the
 * target CPU (irq.c).  How many CPUs there are is the nr_cpus= parameter.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/completion.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/init.h>
#include <linux/interrupt.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/smp.h>
#include <asm/cpu.h>
#include <asm/kasan.h>

/* How long smp_send_stop() waits for the other CPUs to stop. */
#define LKL_STOP_TIMEOUT_NS	NSEC_PER_SEC
/* How long __cpu_up() waits for a CPU to come online. */
#define LKL_CPU_UP_TIMEOUT_MS	10000

static DECLARE_COMPLETION(lkl_cpu_running);
/* The CPU running smp_send_stop(); it is not stopped itself. */
static int lkl_stopping_cpu = -1;

/**
 * lkl_smp_init_cpus() - make CPUs 0 to nr_cpu_ids - 1 possible
 *
 * Called from setup_arch(), after nr_cpus= was parsed.
 */
void __init lkl_smp_init_cpus(void)
{
	unsigned int cpu;

	for (cpu = 1; cpu < nr_cpu_ids; cpu++) {
		set_cpu_possible(cpu, true);
		set_cpu_present(cpu, true);
	}
}

/**
 * smp_prepare_cpus() - nothing to probe: every possible CPU is present
 * @max_cpus: the maxcpus= limit
 */
void __init smp_prepare_cpus(unsigned int max_cpus)
{
}

/**
 * smp_cpus_done() - report the CPUs that came up
 * @max_cpus: the maxcpus= limit
 */
void __init smp_cpus_done(unsigned int max_cpus)
{
	pr_info("%u CPUs online\n", num_online_cpus());
}

/* A secondary CPU's first kernel code, as its idle task. */
static void lkl_secondary_start(unsigned int cpu)
{
	mmgrab(&init_mm);
	current->active_mm = &init_mm;
	if (lkl_time_init_cpu(cpu))
		panic("lkl: cannot allocate the host timer of CPU%u\n", cpu);
	notify_cpu_starting(cpu);
	set_cpu_online(cpu, true);
	complete(&lkl_cpu_running);
	local_irq_enable();
	cpu_startup_entry(CPUHP_AP_ONLINE_IDLE);
}

/* The host thread of a secondary CPU's idle task. */
static void lkl_secondary_thread(void *arg)
{
	struct task_struct *idle = arg;
	unsigned int cpu = task_thread_info(idle)->cpu;
	void *jb[LKL_JMP_BUF_WORDS];

	if (__builtin_setjmp(jb)) {
		lkl_kasan_forget_frames();
		return;
	}
	lkl_exit_point = jb;
	lkl_current_ti = task_thread_info(idle);
	/*
	 * Stored here, not by __cpu_up() once thread_create() returns: the
	 * CPU may switch back to @idle before then, and a switch hands the CPU
	 * to the next task's thread by this id.
	 */
	WRITE_ONCE(idle->thread.tid, lkl_thread_id());
	lkl_cpu_take(&lkl_cpus[cpu], false);
	lkl_secondary_start(cpu);
}

/**
 * __cpu_up() - bring a secondary CPU up
 * @cpu: the CPU
 * @idle: its idle task
 *
 * Return: 0 once @cpu is online, or a negative errno.
 */
int __cpu_up(unsigned int cpu, struct task_struct *idle)
{
	struct lkl_cpu *c = &lkl_cpus[cpu];
	unsigned long left, timeout;
	int ret;

	ret = lkl_cpu_start(c, idle);
	if (ret)
		return ret;
	task_thread_info(idle)->cpu = cpu;
	c->idle_tid = lkl_ops->thread_create(lkl_secondary_thread, idle);
	if (!c->idle_tid)
		return -ENOMEM;

	timeout = msecs_to_jiffies(LKL_CPU_UP_TIMEOUT_MS);
	left = wait_for_completion_timeout(&lkl_cpu_running, timeout);
	if (!left || !cpu_online(cpu)) {
		pr_crit("CPU%u: failed to come online\n", cpu);
		return -EIO;
	}
	return 0;
}

/**
 * arch_smp_send_reschedule() - make a CPU look at its run queue
 * @cpu: the CPU
 */
void arch_smp_send_reschedule(int cpu)
{
	lkl_raise_ipi(&lkl_cpus[cpu], LKL_IPI_RESCHEDULE);
}

/**
 * arch_send_call_function_single_ipi() - make a CPU run its call queue
 * @cpu: the CPU
 */
void arch_send_call_function_single_ipi(int cpu)
{
	lkl_raise_ipi(&lkl_cpus[cpu], LKL_IPI_CALL_FUNC);
}

/**
 * arch_send_call_function_ipi_mask() - make CPUs run their call queues
 * @mask: the CPUs
 */
void arch_send_call_function_ipi_mask(struct cpumask *mask)
{
	unsigned int cpu;

	for_each_cpu(cpu, mask)
		lkl_raise_ipi(&lkl_cpus[cpu], LKL_IPI_CALL_FUNC);
}

/**
 * smp_send_stop() - stop every other CPU for good
 *
 * Used by the halt and by panic().  Waits a while for the CPUs to stop.
 */
void smp_send_stop(void)
{
	unsigned int cpu, this = smp_processor_id();
	u64 deadline;

	__atomic_store_n(&lkl_stopping_cpu, this, __ATOMIC_SEQ_CST);
	for_each_online_cpu(cpu) {
		if (cpu != this)
			lkl_raise_ipi(&lkl_cpus[cpu], LKL_IPI_STOP);
	}
	deadline = lkl_ops->time_ns() + LKL_STOP_TIMEOUT_NS;
	while (num_online_cpus() > 1 && lkl_ops->time_ns() < deadline)
		lkl_ops->thread_yield();
	if (num_online_cpus() > 1)
		pr_warn("CPUs %*pbl did not stop\n",
			cpumask_pr_args(cpu_online_mask));
}

/**
 * lkl_smp_stop_self() - a STOP interrupt arrived on the caller's CPU
 *
 * The CPU stops for good, unless it is the one stopping the others.
 */
void lkl_smp_stop_self(void)
{
	struct lkl_cpu *c = lkl_this_cpu();

	__atomic_fetch_and(&c->ipis, ~BIT(LKL_IPI_STOP), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&lkl_stopping_cpu, __ATOMIC_SEQ_CST) ==
	    smp_processor_id())
		return;
	WRITE_ONCE(c->irq_flags, ARCH_IRQ_DISABLED);
	lkl_cpu_stopped();
}

/**
 * lkl_smp_join_idle_threads() - end the idle threads of every CPU
 *
 * Called by the halt after lkl_release_stopped(), from a task that is not
 * an idle task: each idle thread waits in __switch_to(), for its CPU in
 * arch_cpu_idle(), or in lkl_cpu_stopped(), and is woken to leave.
 */
void lkl_smp_join_idle_threads(void)
{
	unsigned int cpu;

	for (cpu = 0; cpu < nr_cpu_ids; cpu++) {
		struct lkl_cpu *c = &lkl_cpus[cpu];
		struct task_struct *idle;

		if (!c->idle_tid)
			continue;
		idle = idle_task(cpu);
		WRITE_ONCE(idle->thread.dead, true);
		lkl_ops->sem_up(idle->thread.sched_sem);
		lkl_ops->sem_up(c->idle_sem);
		lkl_ops->thread_join(c->idle_tid);
		c->idle_tid = 0;
	}
}
