// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupts of the library kernel.
 *
 * An interrupt is raised for one CPU by setting its bit in that CPU's
 * pending words: lkl_cpu.irqs for device interrupts (the timer), and
 * lkl_cpu.ipis for interprocessor interrupts.  Whoever holds the CPU runs
 * them at the next point where hardware would take them: when it enables
 * interrupts, relaxes in a busy-wait or gives the CPU up (cpu.c).
 * "Interrupts disabled" is a per-CPU flag, since nothing can preempt the
 * thread that holds a CPU.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/hardirq.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/irqchip.h>
#include <asm/cpu.h>
#include <asm/irq_regs.h>

static void lkl_handle_ipis(unsigned long ipis)
{
	if (ipis & BIT(LKL_IPI_STOP))
		lkl_smp_stop_self();
	if (ipis & BIT(LKL_IPI_RESCHEDULE))
		scheduler_ipi();
	if (ipis & BIT(LKL_IPI_CALL_FUNC))
		generic_smp_call_function_interrupt();
}

/**
 * lkl_run_irqs() - run the pending interrupts of the caller's CPU
 * @fn: a function to run in interrupt context first, or NULL
 * @arg: its argument
 *
 * The caller holds the CPU with interrupts enabled.  They are disabled
 * while the handlers run, as on interrupt entry, and lockdep is told.
 */
void lkl_run_irqs(void (*fn)(void *arg), void *arg)
{
	struct lkl_cpu *c = lkl_this_cpu();
	unsigned long irqs, ipis;
	struct pt_regs *old_regs;
	int irq;

	WRITE_ONCE(c->irq_flags, ARCH_IRQ_DISABLED);
	trace_hardirqs_off();
	old_regs = set_irq_regs(&c->regs);
	if (fn) {
		irq_enter();
		fn(arg);
		irq_exit();
	}
	for (;;) {
		irqs = __atomic_exchange_n(&c->irqs, 0, __ATOMIC_SEQ_CST);
		ipis = __atomic_exchange_n(&c->ipis, 0, __ATOMIC_SEQ_CST);
		if (!irqs && !ipis)
			break;
		irq_enter();
		if (ipis)
			lkl_handle_ipis(ipis);
		for_each_set_bit(irq, &irqs, BITS_PER_LONG)
			generic_handle_irq(irq);
		irq_exit();
	}
	set_irq_regs(old_regs);
	c->regs.user = 0;
	trace_hardirqs_on();
	WRITE_ONCE(c->irq_flags, ARCH_IRQ_ENABLED);
}

/**
 * lkl_raise_irq() - raise an interrupt for a CPU
 * @c: the CPU
 * @irq: the interrupt number, below NR_IRQS
 */
void lkl_raise_irq(struct lkl_cpu *c, int irq)
{
	__atomic_fetch_or(&c->irqs, BIT(irq), __ATOMIC_SEQ_CST);
	lkl_cpu_kick(c);
}

/**
 * lkl_raise_ipi() - send an interprocessor interrupt to a CPU
 * @c: the CPU
 * @ipi: which one
 */
void lkl_raise_ipi(struct lkl_cpu *c, enum lkl_ipi ipi)
{
	__atomic_fetch_or(&c->ipis, BIT(ipi), __ATOMIC_SEQ_CST);
	lkl_cpu_kick(c);
}

/**
 * arch_local_save_flags() - whether interrupts are enabled on this CPU
 *
 * Return: ARCH_IRQ_ENABLED or ARCH_IRQ_DISABLED.
 */
unsigned long arch_local_save_flags(void)
{
	return READ_ONCE(lkl_this_cpu()->irq_flags);
}

/**
 * arch_local_irq_restore() - enable or disable interrupts on this CPU
 * @flags: ARCH_IRQ_ENABLED or ARCH_IRQ_DISABLED
 *
 * Enabling interrupts runs the ones that arrived meanwhile, unless the
 * CPU is being handed over (see __switch_to()): its next holder runs them.
 */
void arch_local_irq_restore(unsigned long flags)
{
	struct lkl_cpu *c = lkl_this_cpu();

	if (flags == ARCH_IRQ_ENABLED && lkl_irqs_pending(c) &&
	    !in_interrupt() && !c->handing_over) {
		lkl_run_irqs(NULL, NULL);
		return;
	}
	WRITE_ONCE(c->irq_flags, flags);
}

/**
 * init_IRQ() - give every interrupt a handler that just runs its actions
 *
 * The timer interrupt is per CPU: each CPU raises it for itself, and its
 * handler runs on that CPU without the descriptor's lock.
 */
void __init init_IRQ(void)
{
	int irq;

	for (irq = 0; irq < NR_IRQS; irq++)
		irq_set_chip_and_handler(irq, &dummy_irq_chip,
					 handle_simple_irq);
	irq_set_status_flags(LKL_TIMER_IRQ, IRQ_PER_CPU);
	irq_set_handler(LKL_TIMER_IRQ, handle_percpu_irq);
}
