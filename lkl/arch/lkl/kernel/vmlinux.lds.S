/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Linker script for the relocatable vmlinux of ARCH=lkl.  The host's
 * linker places the result, in an executable or a shared object, and keeps
 * each output section of this link in one piece, but orders the sections as
 * it likes.  So every range the kernel checks an address against (_sdata to
 * _edata, __init_begin to __init_end, __start_rodata to __end_rodata,
 * __bss_start to __bss_stop ...) lies within one output section here: text,
 * read-only data, data (with the init data and the per-CPU data) and bss.
 * Init code and data are never freed: they belong to the host's image.
 *
 * The sections get increasing addresses here, so that the offsets that
 * kallsyms records from _text never put a data symbol among the code.
 */
#include <asm/vmlinux.lds.h>
#include <asm/thread_info.h>
#include <asm/page.h>
#include <asm/cache.h>

OUTPUT_FORMAT(CONFIG_OUTPUT_FORMAT)

jiffies = jiffies_64;

SECTIONS
{
	.text 0 : {
		_text = .;
		_stext = .;
		text = .;
		HEAD_TEXT
		TEXT_TEXT
		SCHED_TEXT
		LOCK_TEXT
		IRQENTRY_TEXT
		SOFTIRQENTRY_TEXT
		*(.fixup)
		_etext = .;
		_sinittext = .;
		INIT_TEXT
		_einittext = .;
	}

	.rodata ALIGN(ADDR(.text) + SIZEOF(.text), PAGE_SIZE) : ALIGN(PAGE_SIZE) {
		__start_rodata = .;
		*(.rodata) *(.rodata.*) *(.data.rel.ro*)
		SCHED_DATA
		RO_AFTER_INIT_DATA
		. = ALIGN(8);
		BOUNDED_SECTION_BY(__tracepoints_ptrs, ___tracepoints_ptrs)
		*(__tracepoints_strings)
		*(.rodata1)
		. = ALIGN(8);
		BOUNDED_SECTION_BY(__param, ___param)
		BOUNDED_SECTION_BY(__modver, ___modver)
		. = ALIGN(16);
		BOUNDED_SECTION_BY(__ex_table, ___ex_table)
		*(.ref.rodata)
		__end_rodata = .;
	}

	.notes ADDR(.rodata) + SIZEOF(.rodata) : {
		BOUNDED_SECTION_BY(.note.*, _notes)
	}

	.data ALIGN(ADDR(.notes) + SIZEOF(.notes), PAGE_SIZE) : ALIGN(PAGE_SIZE) {
		_sdata = .;
		INIT_TASK_DATA(THREAD_SIZE)
		NOSAVE_DATA
		PAGE_ALIGNED_DATA(PAGE_SIZE)
		CACHELINE_ALIGNED_DATA(L1_CACHE_BYTES)
		READ_MOSTLY_DATA(L1_CACHE_BYTES)
		DATA_DATA
		CONSTRUCTORS
		. = ALIGN(8);
		BOUNDED_SECTION_BY(__bug_table, ___bug_table)
		*(.data.rel .data.rel.*)
		*(.got .got.*)

		/* percpu wants __per_cpu_start page aligned. */
		. = ALIGN(PAGE_SIZE);
		__per_cpu_load = .;
		PERCPU_INPUT(L1_CACHE_BYTES)

		. = ALIGN(16);
		__init_begin = .;
		INIT_DATA
		INIT_SETUP(16)
		INIT_CALLS
		CON_INITCALL
		INIT_RAM_FS
		__init_end = .;
		_edata = .;
	}

	.bss ALIGN(ADDR(.data) + SIZEOF(.data), PAGE_SIZE) : ALIGN(PAGE_SIZE) {
		__bss_start = .;
		*(.bss..page_aligned)
		*(.dynbss)
		*(.bss .bss.*)
		*(COMMON)
		__bss_stop = .;
		_end = .;
	}

	STABS_DEBUG
	DWARF_DEBUG
	ELF_DETAILS

	DISCARDS
}
