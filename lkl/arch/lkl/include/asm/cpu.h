/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_LKL_CPU_H
#define _ASM_LKL_CPU_H

#include <asm/host.h>

/* A __builtin_setjmp() buffer is five words. */
#define LKL_JMP_BUF_WORDS	5

/* Set once the kernel has panicked: it is never entered again. */
extern bool lkl_panicked;

int lkl_cpu_init(void);
int lkl_cpu_get(void);
void lkl_cpu_put(void);
int lkl_cpu_try_run_irq(int irq);
void lkl_cpu_change_owner(unsigned long owner);
void lkl_cpu_shutdown(void);
bool lkl_cpu_shutting_down(void);

struct task_struct;

int lkl_threads_init(struct lkl_sem *init_sem);
void lkl_threads_stop(void);
void lkl_switch_to_host_task(struct task_struct *task);
void lkl_deschedule_host_task(void);
int lkl_host_task_fn(void *arg);
void lkl_task_set_exit_jb(struct task_struct *p, void **jb);
void lkl_cpu_wakeup_idle(void);
void lkl_run_irqs(void);
bool lkl_cpu_irqs_pending(void);
void lkl_cpu_cleanup(void);
void lkl_idle_halt(void);

int lkl_syscalls_init(void);
long lkl_host_call(long (*fn)(long nr, long *params, void *data), long nr,
		   long *params, void *data);
void lkl_syscalls_cleanup(void);

void lkl_mem_init(void);
void lkl_mem_cleanup(void);
bool lkl_addr_in_kernel(unsigned long addr, unsigned long size);

void lkl_time_cleanup(void);

#endif /* _ASM_LKL_CPU_H */
