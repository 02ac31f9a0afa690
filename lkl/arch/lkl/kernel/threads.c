// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel tasks on host threads.
 *
 * Every task runs on a host thread of its own.  A context switch on a CPU
 * hands that CPU from the previous task's thread to the next task's: the
 * next thread is released from its semaphore holding the CPU, and the
 * previous one waits on its own until a CPU switches back to its task.
 * Tasks created by the kernel (kthreads, pid 1, idle tasks) get a host
 * thread from copy_thread() or __cpu_up().  "Host tasks" instead run on
 * threads of the host program that make system calls.
 *
 * A host task's thread runs host code between two calls, and then only
 * two states are possible for its task: current on a free CPU (the fast
 * case: the thread takes that CPU back), or asleep in TASK_PARKED, from
 * which only the thread's next call wakes it.  A host task that has to
 * leave its CPU while its thread is away is descheduled by whichever thread
 * runs on that CPU at the time: that thread runs schedule() on the task's
 * behalf and jumps back to its own business when __switch_to() has passed
 * the CPU on.  Conversely, a host task switched to while its thread is away
 * (a new task placed on another CPU, say) returns to "user mode" at once:
 * the switching thread finishes the switch on its behalf and frees the CPU.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <asm/switch_to.h>
#include <asm/cpu.h>
#include <asm/kasan.h>

__thread struct thread_info *lkl_current_ti;

/* Set when pid 1 has "exec'd" /init and the kernel is ready for syscalls. */
static struct lkl_sem *lkl_init_sem;
/* The host thread pid 1 started on, which returns once /init is "run". */
static unsigned long lkl_init_tid;

/*
 * Tasks with a host thread of their own (copy_thread()), from its creation
 * until the task is freed.  Not the task list: a fork on a CPU that a halt
 * stops between copy_thread() and the task's entry there leaves a task
 * only this list knows, whose thread waits for its first turn.
 */
static LIST_HEAD(lkl_own_threads);
static DEFINE_RAW_SPINLOCK(lkl_own_threads_lock);

/* @t no longer has a thread that lkl_threads_stop() must end. */
static void lkl_own_thread_forget(struct thread_struct *t)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&lkl_own_threads_lock, flags);
	list_del_init(&t->own_node);
	raw_spin_unlock_irqrestore(&lkl_own_threads_lock, flags);
}

static bool lkl_is_host_task(struct task_struct *p)
{
	return test_tsk_thread_flag(p, TIF_HOST_THREAD);
}

static int init_thread_struct(struct task_struct *p)
{
	p->thread.sched_sem = lkl_ops->sem_alloc(0);
	if (!p->thread.sched_sem)
		return -ENOMEM;
	p->thread.waiting = 0;
	p->thread.tid = 0;
	p->thread.own_thread = false;
	INIT_LIST_HEAD(&p->thread.own_node);
	p->thread.prev_sched = NULL;
	p->thread.sched_jb = NULL;
	p->thread.dead = false;
	return 0;
}

/**
 * lkl_threads_init() - prepare the boot task before start_kernel() runs
 * @init_sem: posted once the kernel is ready for system calls
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_threads_init(struct lkl_sem *init_sem)
{
	lkl_init_sem = init_sem;
	return init_thread_struct(&init_task);
}

/**
 * arch_release_task_struct() - free the host side of a dead task
 * @tsk: the task being freed
 *
 * Called once nothing can run on @tsk any more: its host thread, if it had
 * one, has left kernel code for good in __switch_to(), or never started
 * (a fork that failed late).  That thread still runs this library's code
 * on its way out, and the library may be unloaded once the kernel halts:
 * wait for it to be gone.  It needs nothing of the kernel to get there.
 */
void arch_release_task_struct(struct task_struct *tsk)
{
	struct thread_struct *t = &tsk->thread;

	/* Not lkl_is_host_task(): thread_info, on the stack, is gone. */
	if (t->own_thread && t->tid) {
		/* Never switched to: it waits for its first turn. */
		if (!t->prev_sched) {
			WRITE_ONCE(t->dead, true);
			lkl_ops->sem_up(t->sched_sem);
		}
		lkl_own_thread_forget(t);
		lkl_ops->thread_join(t->tid);
		t->tid = 0;
	}
	if (tsk->thread.sched_sem)
		lkl_ops->sem_free(tsk->thread.sched_sem);
	tsk->thread.sched_sem = NULL;
}

/*
 * A thread that a switch woke holds the CPU: the switch passed it on by
 * the thread's id.  A task whose id was not stored yet would have left
 * the CPU free while its thread runs, for another thread to take too.
 */
static void lkl_check_handed_over(void)
{
	unsigned long owner = __atomic_load_n(&lkl_this_cpu()->owner,
					      __ATOMIC_SEQ_CST);

	WARN_ONCE(owner != lkl_thread_id(),
		  "lkl: CPU%d handed to thread %lu, not to %s's (%lu)\n",
		  raw_smp_processor_id(), owner, current->comm,
		  lkl_thread_id());
}

static void __noreturn lkl_longjmp(void **jb)
{
	__builtin_longjmp(jb, 1);
}

/*
 * The calling thread, which holds the CPU, finishes a switch to @next, a
 * host task, as @next would (schedule_tail()): the runqueue is unlocked
 * and no lock of the switch stays held for @next's thread to release.
 * With @leave, @next then leaves the CPU as a system call that returns
 * would: its thread runs host code.
 */
static void lkl_finish_switch_for(struct task_struct *prev,
				  struct task_struct *next, bool leave)
{
	struct thread_info *mine = lkl_current_ti;

	lkl_current_ti = task_thread_info(next);
	schedule_tail(prev);
	if (leave)
		lkl_task_leave();
	lkl_current_ti = mine;
}

/**
 * __switch_to() - hand this CPU from @prev to @next
 * @prev: the task giving up the CPU; runs on the calling host thread,
 *	unless the caller borrowed it (see lkl_deschedule())
 * @next: the task to run
 *
 * Return: the task that ran before @prev was switched back to.
 */
struct task_struct *__switch_to(struct task_struct *prev,
				struct task_struct *next)
{
	struct lkl_cpu *c = lkl_this_cpu();
	struct thread_struct *pt = &prev->thread;
	struct thread_struct *nt = &next->thread;
	struct lkl_sem *prev_sem = pt->sched_sem;
	void **sched_jb = pt->sched_jb;
	bool dead = READ_ONCE(prev->__state) == TASK_DEAD;
	int wait;

	pt->sched_jb = NULL;
	nt->prev_sched = prev;
	WRITE_ONCE(c->curr, next);
	/* @prev's own thread is about to wait for its next turn. */
	if (!sched_jb && !dead)
		__atomic_store_n(&pt->waiting, LKL_WAIT_SWITCH,
				 __ATOMIC_SEQ_CST);

	/*
	 * The thread of a kernel-created task always waits for its turn; a
	 * host task's thread may be running host code instead.
	 */
	wait = __atomic_exchange_n(&nt->waiting, LKL_WAIT_NONE,
				   __ATOMIC_SEQ_CST);
	if (wait == LKL_WAIT_NONE && lkl_is_host_task(next)) {
		lkl_cpu_switched(c);
		lkl_finish_switch_for(prev, next, true);
	} else {
		/*
		 * A thread entering a host task may be running an interrupt
		 * on another CPU, perhaps spinning on this CPU's runqueue
		 * lock: it only gets the CPU once the switch is over.  This
		 * thread has taken its wait over and must hand the CPU on:
		 * the interrupts that finishing enables are that thread's to
		 * run, a STOP among them, which would keep the CPU here.
		 */
		if (wait == LKL_WAIT_ENTER) {
			c->handing_over = true;
			lkl_finish_switch_for(prev, next, false);
			c->handing_over = false;
		}
		__atomic_store_n(&c->owner, nt->tid, __ATOMIC_SEQ_CST);
		lkl_cpu_switched(c);
		/* From here on @next runs on this CPU: touch no kernel state. */
		lkl_ops->sem_up(nt->sched_sem);
	}

	if (sched_jb)
		lkl_longjmp(sched_jb);
	if (dead)
		lkl_leave_for_good(0);

	lkl_ops->sem_down(prev_sem);
	lkl_current_ti = task_thread_info(prev);
	if (READ_ONCE(pt->dead))
		lkl_leave_for_good(-ESHUTDOWN);
	lkl_check_handed_over();
	return pt->prev_sched;
}

/**
 * lkl_deschedule() - take the current host task off its CPU
 *
 * The caller holds the CPU and runs as a host task: its own (a system call
 * that returns) or one whose thread runs host code.  The task sleeps in
 * TASK_PARKED until its thread's next system call wakes it; the caller
 * runs schedule() on its behalf and comes back here once __switch_to() has
 * passed the CPU to the next task, holding no CPU.
 */
void lkl_deschedule(void)
{
	struct task_struct *task = current;
	void *jb[LKL_JMP_BUF_WORDS];

	lkl_this_cpu()->user = false;
	task->thread.sched_jb = jb;
	if (!__builtin_setjmp(jb)) {
		set_special_state(TASK_PARKED);
		schedule();
		/* Only the task's own thread wakes a parked host task. */
		BUG();
	}
	lkl_kasan_forget_frames();
}

/* Whether @task is current on a free CPU (for lkl_task_enter()). */
static bool lkl_task_on_free_cpu(struct lkl_cpu *c, void *task)
{
	return READ_ONCE(c->curr) != task ||
	       !__atomic_load_n(&c->owner, __ATOMIC_SEQ_CST);
}

/*
 * @task, a host task, is not current anywhere: wait for a CPU to switch to
 * it, after waking it if it is parked.  A task that is not parked (a new
 * one) is runnable already, and may be switched to any time: the caller
 * must not wait for a CPU then, since that CPU may be the one handed over.
 * A woken task may be switched to on another CPU while the caller still
 * runs the interrupt that woke it: the switching thread finishes that
 * switch (LKL_WAIT_ENTER), and the caller finds it done.
 */
static int lkl_task_wake_and_wait(struct task_struct *task)
{
	struct thread_info *ti = task_thread_info(task);
	unsigned int first = READ_ONCE(ti->cpu), i;
	struct lkl_cpu *c = NULL;
	int ret;

	if (READ_ONCE(task->__state) != TASK_PARKED)
		goto wait;

	/*
	 * The wake-up is run from an idle CPU if there is one, its last CPU
	 * first, and otherwise from any free CPU.  A wake-up from an idle
	 * CPU places the task there or on its idle last CPU (wake_affine());
	 * one from the busy CPU that the task shares with the host task
	 * current there often leaves it queued behind that task, since a
	 * wake-up scans for idle CPUs only while the cache domain looks
	 * lightly used (SIS_UTIL), and a host task current on its CPU
	 * counts as running the whole time its thread runs host code.
	 * Two threads that call at once would then take turns on one CPU
	 * while the other idles.
	 */
	for (i = 0; i < 2 * nr_cpu_ids && !c; i++) {
		unsigned int n = (first + i) % nr_cpu_ids;
		struct lkl_cpu *cand = &lkl_cpus[n];
		struct task_struct *curr;

		if (!cpu_online(n))
			continue;
		curr = READ_ONCE(cand->curr);
		if (i < nr_cpu_ids && (!curr || !is_idle_task(curr)))
			continue;
		if (lkl_cpu_try_take(cand))
			c = cand;
	}
	if (!c) {
		c = &lkl_cpus[first];
		ret = lkl_cpu_take(c, true);
		if (ret)
			return ret;
	}
	lkl_cpu_interrupt(c, lkl_wake_host_task, task);
wait:
	lkl_ops->sem_down(task->thread.sched_sem);
	if (READ_ONCE(task->thread.dead))
		return -ESHUTDOWN;
	lkl_current_ti = ti;
	return 0;
}

/**
 * lkl_task_enter() - run as @task on a CPU, on the calling host thread
 * @task: a host task whose thread is the caller
 *
 * Takes the CPU @task is current on if it is free (the fast path), or
 * wakes @task and waits until a CPU switches to it.
 *
 * Return: 0 with a CPU held, or -ESHUTDOWN once the kernel halts.
 */
int lkl_task_enter(struct task_struct *task)
{
	struct thread_info *ti = task_thread_info(task);
	struct lkl_cpu *c;
	int ret;

	task->thread.tid = lkl_thread_id();
	for (;;) {
		if (lkl_shutting_down())
			return -ESHUTDOWN;
		c = &lkl_cpus[READ_ONCE(ti->cpu)];
		if (READ_ONCE(c->curr) == task) {
			if (lkl_cpu_try_take(c)) {
				if (c->curr == task)
					break;
				lkl_cpu_release(c);
				continue;
			}
			/* An interrupt runs as @task there, or deschedules it. */
			lkl_cpu_wait(c, &c->enterers, lkl_task_on_free_cpu,
				     task);
			continue;
		}

		/*
		 * Say that this thread waits before looking again: a CPU that
		 * switches to @task from now on hands itself over.
		 */
		__atomic_store_n(&task->thread.waiting, LKL_WAIT_ENTER,
				 __ATOMIC_SEQ_CST);
		/*
		 * A halt that began since the check above may have looked for
		 * waiting threads already (lkl_threads_stop() comes after
		 * lkl_shutdown()): leave unless it took the wait, in which case
		 * its wake-up is on the way.
		 */
		if (lkl_shutting_down() &&
		    __atomic_exchange_n(&task->thread.waiting, LKL_WAIT_NONE,
					__ATOMIC_SEQ_CST))
			return -ESHUTDOWN;
		if (READ_ONCE(lkl_cpus[READ_ONCE(ti->cpu)].curr) == task &&
		    __atomic_exchange_n(&task->thread.waiting, 0,
					__ATOMIC_SEQ_CST))
			continue;
		ret = lkl_task_wake_and_wait(task);
		if (ret)
			return ret;
		c = lkl_this_cpu();
		goto entered;
	}
	lkl_current_ti = ti;
entered:
	c->user = false;
	c->entries++;
	return 0;
}

/*
 * Interrupts that came during the call run as if they arrived just after
 * it.  The task then stays current on its CPU, which is freed, unless it
 * has to make way for another task or @asleep: then it is descheduled.
 */
static void lkl_task_leave_cpu(bool asleep)
{
	struct lkl_cpu *c = lkl_this_cpu();

	/* A system call that returns with interrupts off is a kernel bug. */
	if (WARN_ON_ONCE(irqs_disabled()))
		local_irq_enable();
	if (lkl_irqs_pending(c)) {
		c->regs.user = 1;
		lkl_run_irqs(NULL, NULL);
	}
	if (asleep || need_resched() || !single_task_running()) {
		lkl_deschedule();
		return;
	}
	c->user = true;
	lkl_cpu_release(c);
}

/**
 * lkl_task_leave() - the current host task's thread goes back to the host
 *
 * Interrupts that came during the call run as if they arrived just after
 * it.  The task then stays current on its CPU, which is freed, unless it
 * has to make way for another task: then it is descheduled.
 */
void lkl_task_leave(void)
{
	lkl_task_leave_cpu(false);
}

/**
 * lkl_task_leave_asleep() - go back to the host, the task descheduled
 *
 * As lkl_task_leave(), for a task that no thread calls as for a while:
 * lkl_host0 between two clones.  Left current, it would make its CPU look
 * busy to the scheduler, which would queue woken tasks behind others
 * instead of there, until a few quiet ticks deschedule it.
 */
void lkl_task_leave_asleep(void)
{
	lkl_task_leave_cpu(true);
}

/**
 * lkl_wake_host_task() - wake a parked host task for its thread
 * @task: the task
 */
void lkl_wake_host_task(void *task)
{
	wake_up_state(task, TASK_PARKED);
}

static void lkl_init_ready(void)
{
	/* pid 1 "returns to user space": it becomes the first host task. */
	lkl_init_tid = current->thread.tid;
	current->thread.own_thread = false;
	lkl_own_thread_forget(&current->thread);
	set_thread_flag(TIF_HOST_THREAD);
	lkl_syscalls_init();
	lkl_ops->sem_up(lkl_init_sem);
}

static void lkl_thread_bootstrap(void *arg)
{
	struct task_struct *p = arg;
	void *jb[LKL_JMP_BUF_WORDS];
	int ret;

	if (__builtin_setjmp(jb)) {
		lkl_kasan_forget_frames();
		return;
	}
	lkl_exit_point = jb;

	lkl_ops->sem_down(p->thread.sched_sem);
	if (READ_ONCE(p->thread.dead))
		return;
	lkl_current_ti = task_thread_info(p);
	lkl_check_handed_over();
	schedule_tail(p->thread.prev_sched);

	ret = p->thread.fn(p->thread.fn_arg);

	if (!ret && !(p->flags & PF_KTHREAD)) {
		/*
		 * A user-mode thread whose function returned 0 has exec'd
		 * its program.  Here that can only be pid 1 with /init: keep
		 * the task, still holding its CPU, for lkl_start_kernel()'s
		 * caller, whose thread runs it from now on.
		 */
		lkl_init_ready();
		return;
	}
	do_exit(ret);
}

/**
 * arch_dup_task_struct() - copy the forking task to the new one
 * @dst: the new task
 * @src: the task that forks
 *
 * Other CPUs may write @src meanwhile: a wake-up takes its pi_lock, for
 * kthreadd as it forks the kthread that another CPU asked for.  Fields
 * that others write are set afresh in @dst by copy_process() (the locks)
 * or do not describe it, so a torn copy of them is harmless; KCSAN is
 * told that the race is intended.
 *
 * Return: 0.
 */
int arch_dup_task_struct(struct task_struct *dst, struct task_struct *src)
{
	/* Fields others write are set afresh or unused: see above. */
	data_race(memcpy(dst, src, sizeof(*dst)));
	return 0;
}

/**
 * copy_thread() - set up the host side of a new task
 * @p: the new task
 * @args: clone arguments
 *
 * Return: 0 or a negative errno.
 */
int copy_thread(struct task_struct *p, const struct kernel_clone_args *args)
{
	unsigned long flags;
	int ret;

	ret = init_thread_struct(p);
	if (ret)
		return ret;

	if (args->fn == lkl_host_task_fn) {
		/* Runs on the host thread that makes the system calls. */
		set_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);
		return 0;
	}
	clear_ti_thread_flag(task_thread_info(p), TIF_HOST_THREAD);
	/* An idle task gets its thread from __cpu_up(). */
	if (args->idle)
		return 0;

	if (WARN_ON(!args->fn))
		return -EINVAL;
	p->thread.fn = args->fn;
	p->thread.fn_arg = args->fn_arg;
	p->thread.tid = lkl_ops->thread_create(lkl_thread_bootstrap, p);
	if (!p->thread.tid) {
		lkl_ops->sem_free(p->thread.sched_sem);
		p->thread.sched_sem = NULL;
		return -ENOMEM;
	}
	p->thread.own_thread = true;
	raw_spin_lock_irqsave(&lkl_own_threads_lock, flags);
	list_add_tail(&p->thread.own_node, &lkl_own_threads);
	raw_spin_unlock_irqrestore(&lkl_own_threads_lock, flags);
	return 0;
}

/**
 * lkl_threads_stop() - end the host threads of all remaining tasks
 *
 * Called from the last running CPU's idle task once the kernel has powered
 * off.  Every other task waits in __switch_to() or, on a stopped CPU, in
 * lkl_cpu_stopped(), or has never run (a fork that the stop interrupted).
 * Each is woken with its dead flag set and returns to the host: a thread
 * of the kernel's own (lkl_own_threads, which has the tasks of unfinished
 * forks too) is joined, a host task's thread returns -ESHUTDOWN from the
 * call it was in.
 */
void lkl_threads_stop(void)
{
	struct task_struct *p, *t;
	struct thread_struct *own;

	for_each_process_thread(p, t) {
		if (t == current || !lkl_is_host_task(t))
			continue;
		WRITE_ONCE(t->thread.dead, true);
		if (__atomic_exchange_n(&t->thread.waiting, 0,
					__ATOMIC_SEQ_CST))
			lkl_ops->sem_up(t->thread.sched_sem);
	}
	/*
	 * No other CPU runs, and no task but this one will: the list is
	 * walked without its lock, whose release would run interrupts.
	 */
	list_for_each_entry(own, &lkl_own_threads, own_node) {
		if (own == &current->thread)
			continue;
		WRITE_ONCE(own->dead, true);
		lkl_ops->sem_up(own->sched_sem);
	}
	lkl_release_stopped();
	list_for_each_entry(own, &lkl_own_threads, own_node) {
		if (own == &current->thread)
			continue;
		lkl_ops->thread_join(own->tid);
		own->tid = 0;
	}
	if (lkl_init_tid) {
		lkl_ops->thread_join(lkl_init_tid);
		lkl_init_tid = 0;
	}
	lkl_smp_join_idle_threads();
}

/**
 * lkl_host_task_fn() - marker function of host tasks; never runs
 * @arg: unused
 *
 * Return: never returns normally; a host task has no function of its own.
 */
int lkl_host_task_fn(void *arg)
{
	WARN_ONCE(1, "host task function called\n");
	return -EINVAL;
}
