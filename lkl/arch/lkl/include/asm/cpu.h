/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_CPU_H
#define _ASM_LKL_CPU_H

#include <linux/cache.h>
#include <linux/compiler.h>
#include <linux/threads.h>
#include <linux/types.h>
#include <asm/host.h>
#include <asm/ptrace.h>

/* A __builtin_setjmp() buffer is five words. */
#define LKL_JMP_BUF_WORDS	5

/* Interprocessor interrupts, as bits of lkl_cpu.ipis. */
enum lkl_ipi {
	LKL_IPI_RESCHEDULE,
	LKL_IPI_CALL_FUNC,
	LKL_IPI_STOP,
};

/**
 * struct lkl_cpu_waiters - host threads waiting for a change on a CPU
 * @sleepers: how many wait, or are about to
 * @sem: where they wait
 */
struct lkl_cpu_waiters {
	unsigned int sleepers;
	struct lkl_sem *sem;
};

/**
 * struct lkl_cpu - one CPU of the library kernel
 * @owner: the host thread that runs kernel code on this CPU, or 0 while no
 *	thread does (the CPU is free); taken with a compare-and-exchange
 * @curr: the task current on this CPU; changed only by the owner
 * @irqs: interrupts raised for this CPU and not run yet, a bit per IRQ
 * @ipis: interprocessor interrupts not handled yet, a bit per &enum lkl_ipi
 * @irq_flags: ARCH_IRQ_ENABLED or ARCH_IRQ_DISABLED; owner only
 * @handing_over: the owner finishes a switch for the host thread it hands
 *	this CPU to next; interrupts enabled meanwhile wait for that thread
 * @user: @curr is a host task whose thread runs host code
 * @entries: system calls entered on this CPU (owner only)
 * @entries_at_tick: @entries at the last timer interrupt
 * @quiet_ticks: timer interrupts since @curr last entered the kernel
 * @takers: threads waiting in lkl_cpu_take() for this CPU to be free; one
 *	is woken when it is released, and takes it or waits again
 * @enterers: threads waiting in lkl_task_enter() for their task to leave
 *	this CPU or for the CPU to be free; all are woken by either, since
 *	each waits for its own task
 * @idle_parked: the idle thread waits on @idle_sem while the CPU is free
 * @idle_sem: where the idle thread waits
 * @kick: a host timer whose thread runs interrupts raised for a free CPU
 *	whose current task is not the idle task
 * @timer: the host timer behind this CPU's clock event device
 * @regs: what the interrupt being run interrupted
 * @idle_tid: the host thread of this CPU's idle task
 * @stopped: the CPU was stopped (smp_send_stop()) and runs no more code
 */
struct lkl_cpu {
	unsigned long owner;
	struct task_struct *curr;
	unsigned long irqs;
	unsigned long ipis;
	unsigned long irq_flags;
	bool handing_over;
	bool user;
	unsigned long entries;
	unsigned long entries_at_tick;
	unsigned int quiet_ticks;
	struct lkl_cpu_waiters takers;
	struct lkl_cpu_waiters enterers;
	int idle_parked;
	struct lkl_sem *idle_sem;
	struct lkl_timer *kick;
	struct lkl_timer *timer;
	struct pt_regs regs;
	unsigned long idle_tid;
	bool stopped;
} ____cacheline_aligned;

extern struct lkl_cpu lkl_cpus[NR_CPUS];

/* Set once the kernel has panicked: it is never entered again. */
extern bool lkl_panicked;

/* The host thread id of the caller, cached in thread-local storage. */
extern __thread unsigned long lkl_self;

static inline unsigned long lkl_thread_id(void)
{
	if (unlikely(!lkl_self))
		lkl_self = lkl_ops->thread_self();
	return lkl_self;
}

struct task_struct;

/* Where the calling thread leaves the kernel for good, and with what. */
extern __thread void **lkl_exit_point;
extern __thread long lkl_exit_ret;

/* pid 1, the host task every other host task is cloned from. */
extern struct task_struct *lkl_host0;

static inline void cpu_pause(void)
{
	asm volatile("pause" ::: "memory");
}

int lkl_cpus_init(void);
void lkl_cpus_cleanup(void);
struct lkl_cpu *lkl_this_cpu(void);
bool lkl_cpu_try_take(struct lkl_cpu *c);
int lkl_cpu_take(struct lkl_cpu *c, bool may_fail);
void lkl_cpu_wait(struct lkl_cpu *c, struct lkl_cpu_waiters *w,
		  bool (*done)(struct lkl_cpu *c, void *arg), void *arg);
void lkl_cpu_release(struct lkl_cpu *c);
void lkl_cpu_switched(struct lkl_cpu *c);
void lkl_cpu_kick(struct lkl_cpu *c);
void lkl_cpu_interrupt(struct lkl_cpu *c, void (*fn)(void *arg), void *arg);
int lkl_cpu_start(struct lkl_cpu *c, struct task_struct *idle);
bool lkl_irqs_pending(struct lkl_cpu *c);
void __noreturn lkl_cpu_stopped(void);
void lkl_release_stopped(void);

bool lkl_gate_enter(void);
void lkl_gate_exit(void);
bool lkl_shutting_down(void);
void lkl_shutdown(void);
void lkl_drain(void);
void __noreturn lkl_leave_for_good(long ret);

int lkl_threads_init(struct lkl_sem *init_sem);
void lkl_threads_stop(void);
void lkl_deschedule(void);
int lkl_task_enter(struct task_struct *task);
void lkl_task_leave(void);
void lkl_task_leave_asleep(void);
void lkl_wake_host_task(void *task);
int lkl_host_task_fn(void *arg);

void lkl_run_irqs(void (*fn)(void *arg), void *arg);
void lkl_raise_irq(struct lkl_cpu *c, int irq);
void lkl_raise_ipi(struct lkl_cpu *c, enum lkl_ipi ipi);

int lkl_syscalls_init(void);
long lkl_host_call(long (*fn)(long nr, long *params, void *data), long nr,
		   long *params, void *data);
void lkl_syscalls_cleanup(void);
bool lkl_exit_to_user(long *ret);

void lkl_smp_init_cpus(void);
void lkl_smp_stop_self(void);
void lkl_smp_join_idle_threads(void);

void lkl_console_init(void);
void lkl_console_keep_up(void);
void lkl_mem_init(void);
void lkl_mem_cleanup(void);
bool lkl_addr_in_kernel(unsigned long addr, unsigned long size);

int lkl_time_init_cpu(unsigned int cpu);
void lkl_time_cleanup(void);

#endif /* _ASM_LKL_CPU_H */
