// SPDX-License-Identifier: GPL-2.0
/*
 * The CPUs of the library kernel.
 *
 * Kernel code runs on host threads, one per task, and a CPU is a token:
 * the host thread that holds CPU n runs kernel code as the task current on
 * CPU n, and up to nr_cpu_ids threads do so at the same moment.  A context
 * switch passes the token from the previous task's thread to the next
 * one's (threads.c).  A host task's thread runs host code between system
 * calls; its task then stays current on the CPU it last ran on, which is
 * free, so that the thread's next call takes the CPU straight back.
 *
 * Interrupts are raised for a CPU by setting a bit.  The token's holder
 * runs them when it enables interrupts, relaxes in a busy-wait or releases
 * the CPU.  Nobody holds a free CPU, so the raiser makes sure someone takes
 * it: the timer's own host thread runs a tick itself, the idle thread of a
 * CPU whose idle task is current is woken, and otherwise the CPU's "kick"
 * thread (a host timer set to fire at once) takes the CPU and runs them as
 * the task current there.
 *
 * The token is a compare-and-exchange on lkl_cpu.owner; a thread that
 * must wait for it sleeps on a host semaphore.  Raising an interrupt and
 * releasing a CPU form a Dekker pair (each writes its own word, then reads
 * the other's, both sequentially consistent): either the raiser sees the
 * CPU held, and its holder later sees the interrupt, or the raiser sees it
 * free and hands it to someone.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/cpu.h>
#include <linux/hardirq.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/sched/stat.h>
#include <linux/sched/task.h>
#include <linux/smp.h>
#include <linux/tick.h>
#include <asm/cpu.h>
#include <asm/kasan.h>
#include <asm/irqflags.h>

struct lkl_cpu lkl_cpus[NR_CPUS];
__thread unsigned long lkl_self;
/* Where the calling thread leaves the kernel for good, and with what. */
__thread void **lkl_exit_point;
__thread long lkl_exit_ret;

/* Spins on a held CPU before sleeping: holders keep it for microseconds. */
#define LKL_TAKE_SPINS		64
/* A host task idle for this many timer interrupts gives its CPU back. */
#define LKL_QUIET_TICKS		2
/* Busy-wait iterations between two yields of the host CPU. */
#define LKL_RELAX_YIELD		64

/* Set by lkl_shutdown(): the kernel is halting, or has panicked. */
static int lkl_halting;
/*
 * Host threads inside lkl_gate_enter() .. lkl_gate_exit(), counted in
 * slots a cache line apart: a host thread always uses the same slot, so
 * threads entering at once on different CPUs do not bounce one line.
 */
#define LKL_GATE_SLOTS		16
struct lkl_gate_slot {
	long active;
} ____cacheline_aligned;
static struct lkl_gate_slot lkl_gate[LKL_GATE_SLOTS];
static unsigned int lkl_gate_next;
static __thread int lkl_gate_slot = -1;
/* Threads that ran a STOP interrupt wait here until the halt frees them. */
static struct lkl_sem *lkl_stopped_sem;
static unsigned int lkl_stopped_threads;
static int lkl_stopped_released;
static __thread unsigned int lkl_relax_count;

static void __noreturn lkl_wait_release(void);

/**
 * lkl_cpu_alloc() - allocate the host objects of one CPU
 * @c: the CPU
 *
 * Return: 0 or -ENOMEM.
 */
static int lkl_cpu_alloc(struct lkl_cpu *c)
{
	c->takers.sem = lkl_ops->sem_alloc(0);
	c->enterers.sem = lkl_ops->sem_alloc(0);
	c->idle_sem = lkl_ops->sem_alloc(0);
	c->irq_flags = ARCH_IRQ_DISABLED;
	if (!c->takers.sem || !c->enterers.sem || !c->idle_sem)
		return -ENOMEM;
	return 0;
}

/**
 * lkl_cpus_init() - prepare the boot CPU before start_kernel() runs
 *
 * The other CPUs get their host objects when they are brought up.
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_cpus_init(void)
{
	lkl_stopped_sem = lkl_ops->sem_alloc(0);
	if (!lkl_stopped_sem)
		return -ENOMEM;
	return lkl_cpu_alloc(&lkl_cpus[0]);
}

/**
 * lkl_cpus_cleanup() - free the host objects of every CPU after halt
 *
 * Called once no thread but the caller can touch them (lkl_drain()).
 */
void lkl_cpus_cleanup(void)
{
	struct lkl_cpu *c;

	for (c = lkl_cpus; c < lkl_cpus + nr_cpu_ids; c++) {
		if (c->kick)
			lkl_ops->timer_free(c->kick);
		if (c->idle_sem)
			lkl_ops->sem_free(c->idle_sem);
		if (c->enterers.sem)
			lkl_ops->sem_free(c->enterers.sem);
		if (c->takers.sem)
			lkl_ops->sem_free(c->takers.sem);
		memset(c, 0, sizeof(*c));
	}
	lkl_ops->sem_free(lkl_stopped_sem);
	lkl_stopped_sem = NULL;
}

/**
 * lkl_this_cpu() - the CPU the calling thread holds
 *
 * Return: its &struct lkl_cpu.
 */
struct lkl_cpu *lkl_this_cpu(void)
{
	return &lkl_cpus[raw_smp_processor_id()];
}

/**
 * lkl_irqs_pending() - whether interrupts wait for a CPU
 * @c: the CPU
 *
 * Return: true if an interrupt or IPI was raised and not run yet.
 */
bool lkl_irqs_pending(struct lkl_cpu *c)
{
	return __atomic_load_n(&c->irqs, __ATOMIC_SEQ_CST) |
	       __atomic_load_n(&c->ipis, __ATOMIC_SEQ_CST);
}

/**
 * lkl_cpu_try_take() - take a free CPU for the calling thread
 * @c: the CPU
 *
 * Return: true if the caller now holds @c.
 */
bool lkl_cpu_try_take(struct lkl_cpu *c)
{
	unsigned long free = 0;

	return __atomic_compare_exchange_n(&c->owner, &free, lkl_thread_id(),
					   false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

/**
 * lkl_cpu_wait() - sleep until a CPU may have changed hands
 * @c: the CPU
 * @w: @c's takers or enterers, whichever the caller is
 * @done: whether the wait is over; checked after registering as a sleeper
 * @arg: its argument
 *
 * Woken when @c is released, when its current task changes (enterers
 * only, see lkl_cpu_switched()), or when the kernel halts.  Only a hint:
 * callers look again.
 */
void lkl_cpu_wait(struct lkl_cpu *c, struct lkl_cpu_waiters *w,
		  bool (*done)(struct lkl_cpu *c, void *arg), void *arg)
{
	__atomic_add_fetch(&w->sleepers, 1, __ATOMIC_SEQ_CST);
	if (!done(c, arg) && !lkl_shutting_down())
		lkl_ops->sem_down(w->sem);
	__atomic_sub_fetch(&w->sleepers, 1, __ATOMIC_SEQ_CST);
}

/*
 * Wakes one of @w's sleepers, or all of them.  A sleeper that is woken
 * twice, or that did not go to sleep, leaves a token behind: a later
 * sleeper wakes up early and looks again.
 */
static void lkl_cpu_wake(struct lkl_cpu_waiters *w, bool all)
{
	unsigned int n = __atomic_load_n(&w->sleepers, __ATOMIC_SEQ_CST);

	if (!all && n)
		n = 1;
	while (n--)
		lkl_ops->sem_up(w->sem);
}

static bool lkl_cpu_is_free(struct lkl_cpu *c, void *unused)
{
	return !__atomic_load_n(&c->owner, __ATOMIC_SEQ_CST);
}

/**
 * lkl_cpu_take() - take a CPU for the calling thread, waiting if need be
 * @c: the CPU
 * @may_fail: give up if the kernel halts meanwhile
 *
 * Return: 0, or -ESHUTDOWN if @may_fail and the kernel halted.
 */
int lkl_cpu_take(struct lkl_cpu *c, bool may_fail)
{
	unsigned int spins = 0;

	while (!lkl_cpu_try_take(c)) {
		/* A stopped CPU is never given back. */
		if (READ_ONCE(c->stopped))
			lkl_wait_release();
		if (may_fail && lkl_shutting_down())
			return -ESHUTDOWN;
		if (++spins < LKL_TAKE_SPINS) {
			cpu_pause();
			continue;
		}
		spins = 0;
		lkl_cpu_wait(c, &c->takers, lkl_cpu_is_free, NULL);
	}
	return 0;
}

/**
 * lkl_cpu_release() - free a CPU the calling thread holds
 * @c: the CPU
 *
 * Interrupts raised meanwhile are handed on (lkl_cpu_kick()).
 */
void lkl_cpu_release(struct lkl_cpu *c)
{
	__atomic_store_n(&c->owner, 0, __ATOMIC_SEQ_CST);
	lkl_cpu_wake(&c->takers, false);
	lkl_cpu_wake(&c->enterers, true);
	if (lkl_irqs_pending(c))
		lkl_cpu_kick(c);
}

/**
 * lkl_cpu_switched() - a CPU's current task changed
 * @c: the CPU, held by the caller
 *
 * A thread may be waiting for its own task to leave @c before it wakes it
 * elsewhere (lkl_task_enter()).  Every such thread is woken: only the
 * previous task's has reason to go on, and the others look again.
 */
void lkl_cpu_switched(struct lkl_cpu *c)
{
	lkl_cpu_wake(&c->enterers, true);
}

/**
 * lkl_cpu_kick() - make sure someone runs the interrupts raised for a CPU
 * @c: the CPU
 *
 * Nothing to do while the CPU is held: its holder runs them.  A free CPU
 * whose idle task is current has its idle thread woken; any other free CPU
 * is taken by its kick thread.
 */
void lkl_cpu_kick(struct lkl_cpu *c)
{
	if (__atomic_load_n(&c->owner, __ATOMIC_SEQ_CST))
		return;
	if (__atomic_exchange_n(&c->idle_parked, 0, __ATOMIC_SEQ_CST)) {
		lkl_ops->sem_up(c->idle_sem);
		return;
	}
	if (c->kick)
		lkl_ops->timer_set_oneshot(c->kick, 0);
}

/* Counts timer interrupts during which a host task made no system call. */
static bool lkl_cpu_quiet(struct lkl_cpu *c)
{
	if (c->entries != c->entries_at_tick) {
		c->entries_at_tick = c->entries;
		c->quiet_ticks = 0;
		return false;
	}
	return ++c->quiet_ticks >= LKL_QUIET_TICKS;
}

/*
 * Leaves a free CPU the caller took to run interrupts for the task current
 * there (the idle task, or a host task whose thread runs host code).
 */
static void lkl_cpu_leave_interrupt(struct lkl_cpu *c, bool tick)
{
	if (is_idle_task(c->curr)) {
		/*
		 * On hardware any interrupt ends the idle instruction and the
		 * idle loop goes round again.  Here only one that leaves work
		 * does, and one that may stop the tick: do_idle() stops it
		 * only once a tick came while idle, on its next round.
		 */
		bool wake = need_resched() ||
			    (tick && !tick_nohz_tick_stopped_cpu(c - lkl_cpus));

		lkl_cpu_release(c);
		if (wake &&
		    __atomic_exchange_n(&c->idle_parked, 0, __ATOMIC_SEQ_CST))
			lkl_ops->sem_up(c->idle_sem);
		return;
	}

	/*
	 * A host task that has to make way for another task, or that has not
	 * entered the kernel for a while, goes to sleep until its thread's
	 * next system call: the CPU can then go idle and stop its tick.
	 */
	if (need_resched() || !single_task_running() ||
	    (tick && lkl_cpu_quiet(c))) {
		lkl_deschedule();
		return;
	}
	lkl_cpu_release(c);
}

/**
 * lkl_cpu_interrupt() - run interrupts on a free CPU the caller took
 * @c: the CPU, taken with lkl_cpu_try_take() or lkl_cpu_take()
 * @fn: a function to run in interrupt context first, or NULL
 * @arg: its argument
 *
 * Runs as the task current on @c, which is the idle task or a host task
 * whose thread runs host code, as hardware would interrupt it; then leaves
 * @c: free, to its idle thread, or to a task that was woken.
 */
void lkl_cpu_interrupt(struct lkl_cpu *c, void (*fn)(void *arg), void *arg)
{
	struct thread_info *saved_ti = lkl_current_ti;
	void **saved_exit = lkl_exit_point;
	void *jb[LKL_JMP_BUF_WORDS];
	bool tick;

	if (__builtin_setjmp(jb)) {
		/* The kernel stopped this CPU for good (halt or panic). */
		lkl_kasan_forget_frames();
		lkl_exit_point = saved_exit;
		lkl_current_ti = saved_ti;
		return;
	}
	if (!saved_exit)
		lkl_exit_point = jb;

	lkl_current_ti = task_thread_info(c->curr);
	c->regs.user = c->user;
	tick = READ_ONCE(c->irqs) & BIT(LKL_TIMER_IRQ);
	lkl_run_irqs(fn, arg);
	lkl_cpu_leave_interrupt(c, tick);

	lkl_exit_point = saved_exit;
	lkl_current_ti = saved_ti;
}

/* The kick thread of a CPU: run what was raised for it if it is free. */
static void lkl_cpu_kick_fn(void *arg)
{
	struct lkl_cpu *c = arg;

	if (!lkl_gate_enter())
		return;
	if (lkl_cpu_try_take(c))
		lkl_cpu_interrupt(c, NULL, NULL);
	lkl_gate_exit();
}

/**
 * lkl_cpu_start() - set up a CPU before its idle thread takes it
 * @c: the CPU
 * @idle: its idle task
 *
 * Return: 0 or -ENOMEM.
 */
int lkl_cpu_start(struct lkl_cpu *c, struct task_struct *idle)
{
	if (!c->takers.sem && lkl_cpu_alloc(c))
		return -ENOMEM;
	c->kick = lkl_ops->timer_alloc(lkl_cpu_kick_fn, c);
	if (!c->kick)
		return -ENOMEM;
	c->curr = idle;
	return 0;
}

/**
 * arch_cpu_idle() - wait for work while nothing is runnable on this CPU
 *
 * Entered and left with interrupts disabled (default_idle_call() enables
 * them afterwards).  Pending interrupts run first; then the CPU is freed
 * and the idle thread sleeps until an interrupt leaves work for it.
 */
void arch_cpu_idle(void)
{
	struct lkl_cpu *c = lkl_this_cpu();

	raw_local_irq_enable();
	if (!need_resched()) {
		__atomic_store_n(&c->idle_parked, 1, __ATOMIC_SEQ_CST);
		lkl_cpu_release(c);
		lkl_ops->sem_down(c->idle_sem);
		/* Woken by a stale token: nobody took the parking back. */
		__atomic_store_n(&c->idle_parked, 0, __ATOMIC_SEQ_CST);
		lkl_cpu_take(c, false);
		/* Run what woke this CPU up. */
		raw_local_irq_enable();
	}
	raw_local_irq_disable();
}

/**
 * lkl_cpu_relax() - one iteration of a busy-wait
 *
 * Lets pending interrupts in (a STOP even with interrupts disabled, as an
 * NMI would), unless the CPU is being handed over (see __switch_to()), and
 * now and then yields the host CPU: the thread being waited for may not be
 * running on the host.
 */
void lkl_cpu_relax(void)
{
	struct lkl_cpu *c = lkl_this_cpu();

	cpu_pause();
	if (unlikely(READ_ONCE(c->irqs) | READ_ONCE(c->ipis)) &&
	    !c->handing_over) {
		if (READ_ONCE(c->ipis) & BIT(LKL_IPI_STOP))
			lkl_smp_stop_self();
		if (!irqs_disabled())
			lkl_run_irqs(NULL, NULL);
	}
	if (++lkl_relax_count % LKL_RELAX_YIELD == 0)
		lkl_ops->thread_yield();
}

/*
 * A string being written by lkl_cpus_state().  Its helpers are written
 * here rather than taken from lib/vsprintf.c: the caller is a host thread
 * with no task, and code the sanitizers instrument looks at current.  This
 * directory is not instrumented.
 */
struct lkl_text {
	char *buf;
	unsigned long size;
	unsigned long len;
};

static void lkl_text_add(struct lkl_text *t, const char *s, unsigned long max)
{
	while (max-- && *s && t->len + 1 < t->size)
		t->buf[t->len++] = *s++;
	t->buf[t->len] = '\0';
}

static void lkl_text_str(struct lkl_text *t, const char *s)
{
	lkl_text_add(t, s, ~0UL);
}

static void lkl_text_num(struct lkl_text *t, unsigned long v, unsigned int base)
{
	char digits[24];
	unsigned int n = sizeof(digits) - 1;

	digits[n] = '\0';
	do {
		digits[--n] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (base == 16)
		lkl_text_str(t, "0x");
	lkl_text_str(t, digits + n);
}

/**
 * lkl_cpus_state() - describe every CPU, for the report of a hung kernel
 * @buf: where to write; always NUL-terminated
 * @size: its size in bytes
 *
 * Called by the host from any thread while the kernel may be deadlocked:
 * it takes nothing, calls no kernel function, and reads each CPU's state
 * as it is, so a line may be a moment stale.
 *
 * Return: the length written, without the NUL.
 */
long lkl_cpus_state(char *buf, unsigned long size)
{
	struct lkl_text t = { .buf = buf, .size = size };
	unsigned int cpu;

	if (!size)
		return 0;
	buf[0] = '\0';
	for (cpu = 0; cpu < nr_cpu_ids; cpu++) {
		struct lkl_cpu *c = &lkl_cpus[cpu];
		struct task_struct *curr = READ_ONCE(c->curr);
		unsigned long owner = __atomic_load_n(&c->owner,
						      __ATOMIC_SEQ_CST);

		if (!curr)
			continue;
		lkl_text_str(&t, "cpu");
		lkl_text_num(&t, cpu, 10);
		lkl_text_str(&t, ": current ");
		lkl_text_add(&t, curr->comm, sizeof(curr->comm));
		lkl_text_str(&t, "/");
		lkl_text_num(&t, curr->pid, 10);
		lkl_text_str(&t, is_idle_task(curr) ? " (idle), " : ", ");
		if (owner) {
			lkl_text_str(&t, "held by host thread ");
			lkl_text_num(&t, owner, 10);
		} else {
			lkl_text_str(&t, "free");
		}
		lkl_text_str(&t, ", irqs ");
		lkl_text_num(&t, READ_ONCE(c->irqs), 16);
		lkl_text_str(&t, " ipis ");
		lkl_text_num(&t, READ_ONCE(c->ipis), 16);
		lkl_text_str(&t, ", waiting: ");
		lkl_text_num(&t, READ_ONCE(c->takers.sleepers), 10);
		lkl_text_str(&t, " to take it, ");
		lkl_text_num(&t, READ_ONCE(c->enterers.sleepers), 10);
		lkl_text_str(&t, " to enter");
		if (READ_ONCE(c->stopped))
			lkl_text_str(&t, ", stopped");
		lkl_text_str(&t, "\n");
	}
	return t.len;
}

/**
 * lkl_gate_enter() - count the caller in, unless the kernel is halting
 *
 * Every host thread that enters the kernel from the host (a system call, an
 * interrupt, a thread-exit destructor) does so between lkl_gate_enter() and
 * lkl_gate_exit(), so that the halt can wait for them to leave.
 *
 * Return: true if the caller may go on; false once the kernel halts.
 */
bool lkl_gate_enter(void)
{
	long *active;

	if (lkl_gate_slot < 0)
		lkl_gate_slot = __atomic_fetch_add(&lkl_gate_next, 1,
						   __ATOMIC_RELAXED) %
				LKL_GATE_SLOTS;
	active = &lkl_gate[lkl_gate_slot].active;
	/* Paired with lkl_shutdown()'s store and lkl_drain()'s loads. */
	__atomic_add_fetch(active, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&lkl_halting, __ATOMIC_SEQ_CST))
		return true;
	__atomic_sub_fetch(active, 1, __ATOMIC_SEQ_CST);
	return false;
}

/**
 * lkl_gate_exit() - count the caller out again
 */
void lkl_gate_exit(void)
{
	__atomic_sub_fetch(&lkl_gate[lkl_gate_slot].active, 1,
			   __ATOMIC_SEQ_CST);
}

/**
 * lkl_shutting_down() - whether lkl_shutdown() was called
 *
 * Return: true once the kernel is halting or has panicked.
 */
bool lkl_shutting_down(void)
{
	return __atomic_load_n(&lkl_halting, __ATOMIC_SEQ_CST);
}

/**
 * lkl_shutdown() - refuse the kernel to every later caller
 *
 * Threads waiting for a CPU are woken to give up.
 */
void lkl_shutdown(void)
{
	unsigned int cpu;

	__atomic_store_n(&lkl_halting, 1, __ATOMIC_SEQ_CST);
	for (cpu = 0; cpu < nr_cpu_ids; cpu++) {
		lkl_cpu_wake(&lkl_cpus[cpu].takers, true);
		lkl_cpu_wake(&lkl_cpus[cpu].enterers, true);
	}
}

/**
 * lkl_drain() - wait until no other thread is inside the kernel's gate
 *
 * Called by the halting thread once every thread was told to leave.
 */
void lkl_drain(void)
{
	unsigned int slot;

	for (slot = 0; slot < LKL_GATE_SLOTS; slot++)
		while (__atomic_load_n(&lkl_gate[slot].active,
				       __ATOMIC_SEQ_CST))
			lkl_ops->thread_yield();
}

/*
 * The calling thread is done with the kernel for good: it waits until the
 * halt lets it go, then leaves (lkl_leave_for_good()).  After a panic it
 * waits forever.
 */
static void __noreturn lkl_wait_release(void)
{
	__atomic_add_fetch(&lkl_stopped_threads, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&lkl_stopped_released, __ATOMIC_SEQ_CST))
		lkl_ops->sem_down(lkl_stopped_sem);
	lkl_leave_for_good(-ESHUTDOWN);
}

/**
 * lkl_cpu_stopped() - the calling thread's CPU stops for good
 *
 * Called on the thread that ran a STOP interrupt (smp_send_stop()), which
 * holds the CPU: the CPU runs no more kernel code, and threads waiting for
 * it give up.
 */
void __noreturn lkl_cpu_stopped(void)
{
	struct lkl_cpu *c = lkl_this_cpu();

	WRITE_ONCE(c->stopped, true);
	set_cpu_online(smp_processor_id(), false);
	lkl_cpu_wake(&c->takers, true);
	lkl_cpu_wake(&c->enterers, true);
	lkl_wait_release();
}

/**
 * lkl_release_stopped() - let the threads of stopped CPUs leave the kernel
 *
 * Called by the halt, once the last running CPU is done with the kernel.
 * A thread that comes to a stopped CPU later leaves at once.
 */
void lkl_release_stopped(void)
{
	unsigned int i, n;

	__atomic_store_n(&lkl_stopped_released, 1, __ATOMIC_SEQ_CST);
	n = __atomic_load_n(&lkl_stopped_threads, __ATOMIC_SEQ_CST);
	for (i = 0; i < n; i++)
		lkl_ops->sem_up(lkl_stopped_sem);
}

/**
 * lkl_leave_for_good() - return the calling thread to the host
 * @ret: what a system call in progress on the thread returns
 *
 * Jumps to where the thread entered the kernel from the host: a system call
 * returns @ret (0 when its task exited, -ESHUTDOWN when the kernel halted or
 * panicked), a kernel thread's host thread returns, an interrupt thread's
 * callback returns.  No kernel code runs on the thread afterwards.
 */
void __noreturn lkl_leave_for_good(long ret)
{
	void **jb = lkl_exit_point;
	struct lkl_sem *never;

	if (unlikely(!jb)) {
		/* Nowhere to go: this thread never runs kernel code again. */
		never = lkl_ops->sem_alloc(0);
		for (;;)
			lkl_ops->sem_down(never);
	}
	lkl_exit_ret = ret;
	__builtin_longjmp(jb, 1);
}
