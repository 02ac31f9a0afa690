// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupts of the library kernel.
 *
 * The host raises an interrupt from one of its threads (the timer thread,
 * say) with lkl_trigger_irq().  If the CPU is free the interrupt runs at
 * once on that thread; otherwise it is marked pending and whoever owns the
 * CPU runs it when it next enables interrupts or releases the CPU.
 * "Interrupts disabled" is a flag: nothing can preempt the owner.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/hardirq.h>
#include <linux/irqchip.h>
#include <asm/cpu.h>

static unsigned long irqs_enabled;
static unsigned long irq_pending_mask;

static void lkl_handle_irq(int irq)
{
	irq_enter();
	generic_handle_irq(irq);
	irq_exit();
}

/**
 * lkl_run_irqs() - run every pending interrupt; the caller owns the CPU
 */
void lkl_run_irqs(void)
{
	unsigned long pending;
	int irq;

	lkl_cpu_irqs_pending();
	/* As the hardware does on interrupt entry, and lockdep is told. */
	WRITE_ONCE(irqs_enabled, ARCH_IRQ_DISABLED);
	trace_hardirqs_off();
	while ((pending = xchg(&irq_pending_mask, 0)) != 0) {
		for_each_set_bit(irq, &pending, BITS_PER_LONG)
			lkl_handle_irq(irq);
	}
	trace_hardirqs_on();
	WRITE_ONCE(irqs_enabled, ARCH_IRQ_ENABLED);
}

/**
 * lkl_trigger_irq() - raise an interrupt from a host thread
 * @irq: the interrupt number, below NR_IRQS
 *
 * Return: 0, or -EINVAL for a bad @irq.
 */
int lkl_trigger_irq(int irq)
{
	if (irq < 0 || irq >= NR_IRQS || irq >= BITS_PER_LONG)
		return -EINVAL;

	set_bit(irq, &irq_pending_mask);
	if (!lkl_cpu_try_run_irq(irq))
		return 0;

	/* The CPU was free: this thread runs the interrupt itself. */
	lkl_run_irqs();
	lkl_cpu_put();
	return 0;
}

/**
 * arch_local_save_flags() - whether interrupts are enabled
 *
 * Return: ARCH_IRQ_ENABLED or ARCH_IRQ_DISABLED.
 */
unsigned long arch_local_save_flags(void)
{
	return READ_ONCE(irqs_enabled);
}

/**
 * arch_local_irq_restore() - enable or disable interrupts
 * @flags: ARCH_IRQ_ENABLED or ARCH_IRQ_DISABLED
 *
 * Enabling interrupts runs the ones that arrived meanwhile.
 */
void arch_local_irq_restore(unsigned long flags)
{
	if (flags == ARCH_IRQ_ENABLED && READ_ONCE(irq_pending_mask) &&
	    !in_interrupt()) {
		lkl_run_irqs();
		return;
	}
	WRITE_ONCE(irqs_enabled, flags);
}

/**
 * init_IRQ() - give every interrupt a handler that just runs its actions
 */
void __init init_IRQ(void)
{
	int irq;

	for (irq = 0; irq < NR_IRQS; irq++)
		irq_set_chip_and_handler(irq, &dummy_irq_chip,
					 handle_simple_irq);
}
