//! The kernel log sink.
//!
//! The kernel registers an *extended* console (`CON_EXTENDED`), so records
//! arrive in `/dev/kmsg` format, one per line:
//!
//! ```text
//! <prefix>,<seq>,<timestamp_us>,<flags>[,caller=T123|C0][,more=...];<text>\n
//! [ KEY=value\n ...]
//! ```
//!
//! `prefix` is `facility * 8 + level`. In the text (and dictionary values)
//! every byte below `0x20`, at or above `0x7f`, and `\` itself is escaped
//! as `\xNN`; [`Console`] unescapes them (multi-line messages thus come
//! back with real `\n`s, UTF-8 comes back as UTF-8). Lines starting with a
//! space are dictionary entries (`SUBSYSTEM=`, `DEVICE=`) of the record
//! before them.
//!
//! Writes may split a line or carry several: bytes are buffered until a
//! line is complete, and each `push_bytes` call is atomic with respect to
//! the others (one lock), so complete lines are never torn. Lines that do
//! not parse (e.g. raw early-boot text) are kept as [`Origin::Raw`]
//! records. Nothing is dropped.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::ffi::write_stderr;

/// Who logged a record (`caller=` field, `CONFIG_PRINTK_CALLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// `T<pid>`: a task.
    Task(u32),
    /// `C<cpu>`: a CPU in interrupt context.
    Cpu(u32),
}

/// Where a [`Record`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    /// A parsed `/dev/kmsg`-format record.
    #[default]
    Kmsg,
    /// A line that did not parse; kept verbatim (minus a leading `<N>`).
    Raw,
    /// Synthesized by the host (e.g. the panic notice).
    Host,
}

/// Default level for raw lines without a `<N>` prefix
/// (`MESSAGE_LOGLEVEL_DEFAULT`, `KERN_WARNING`).
pub const RAW_DEFAULT_LEVEL: u8 = 4;

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Log level 0 (emerg) ..= 7 (debug).
    pub level: u8,
    /// Syslog facility (0 = kernel).
    pub facility: u8,
    /// Sequence number (0 for raw and host records).
    pub seq: u64,
    /// Kernel timestamp in microseconds (0 for raw and host records).
    pub timestamp_us: u64,
    /// The `caller=` field, if present.
    pub caller: Option<Caller>,
    /// The message, unescaped (may contain newlines).
    pub text: String,
    /// Dictionary entries from the continuation lines, unescaped, in order.
    pub dict: Vec<(String, String)>,
    /// Parsed, raw or host-made.
    pub origin: Origin,
}

impl Record {
    /// Renders like `dmesg` with caller ids:
    /// `[    0.123456] [T12] text`. Raw and host records render as their
    /// text alone.
    ///
    /// A record whose text has newlines renders as several lines, each
    /// with the record's prefix, as the kernel's console and `dmesg` print
    /// it: no line of the log is ever without its timestamp.
    pub fn fmt_dmesg(&self) -> String {
        if self.origin != Origin::Kmsg {
            return self.text.clone();
        }
        let prefix = self.dmesg_prefix();
        let mut s = String::with_capacity(self.text.len() + prefix.len());
        for (i, line) in self.text.split('\n').enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(&prefix);
            s.push_str(line);
        }
        s
    }

    /// `[    0.123456] [T12] `: the timestamp and the caller.
    fn dmesg_prefix(&self) -> String {
        let mut s = format!(
            "[{:5}.{:06}] ",
            self.timestamp_us / 1_000_000,
            self.timestamp_us % 1_000_000
        );
        match self.caller {
            Some(Caller::Task(t)) => {
                let _ = write!(s, "[T{t}] ");
            }
            Some(Caller::Cpu(c)) => {
                let _ = write!(s, "[C{c}] ");
            }
            None => {}
        }
        s
    }

    /// Parses one line (without its `\n`). Never fails: a line that is not
    /// a `/dev/kmsg` record becomes an [`Origin::Raw`] record.
    pub fn parse(line: &[u8]) -> Record {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        parse_kmsg(line).unwrap_or_else(|| parse_raw(line))
    }
}

fn parse_kmsg(line: &[u8]) -> Option<Record> {
    let semi = line.iter().position(|&b| b == b';')?;
    let header = std::str::from_utf8(&line[..semi]).ok()?;
    let mut fields = header.split(',');
    let prefix: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let timestamp_us: u64 = fields.next()?.parse().ok()?;
    let flags = fields.next()?;
    if flags.is_empty() || flags.contains('=') {
        return None;
    }
    let mut caller = None;
    for f in fields {
        if let Some(c) = f.strip_prefix("caller=") {
            caller = parse_caller(c);
        }
    }
    Some(Record {
        level: (prefix & 7) as u8,
        facility: u8::try_from(prefix >> 3).ok()?,
        seq,
        timestamp_us,
        caller,
        text: unescape(&line[semi + 1..]),
        dict: Vec::new(),
        origin: Origin::Kmsg,
    })
}

fn parse_caller(c: &str) -> Option<Caller> {
    let (kind, num) = c.split_at_checked(1)?;
    let n: u32 = num.parse().ok()?;
    match kind {
        "T" => Some(Caller::Task(n)),
        "C" => Some(Caller::Cpu(n)),
        _ => None,
    }
}

fn parse_raw(line: &[u8]) -> Record {
    let (prefix, rest) = split_level_prefix(line);
    let (level, facility) = match prefix {
        Some(p) => ((p & 7) as u8, (p >> 3) as u8),
        None => (RAW_DEFAULT_LEVEL, 0),
    };
    Record {
        level,
        facility,
        text: String::from_utf8_lossy(rest).into_owned(),
        origin: Origin::Raw,
        ..Record::default()
    }
}

/// Splits a leading `<N>` (1..=3 digits, N < 2048) off a raw line.
fn split_level_prefix(line: &[u8]) -> (Option<u32>, &[u8]) {
    let Some(rest) = line.strip_prefix(b"<") else {
        return (None, line);
    };
    let Some(end) = rest.iter().position(|&b| b == b'>') else {
        return (None, line);
    };
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return (None, line);
    }
    let n = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if n >= 2048 {
        return (None, line);
    }
    (Some(n), &rest[end + 1..])
}

/// Undoes the kernel's `\xNN` escaping; other backslashes stay as they are.
pub fn unescape(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1] == b'x' {
            if let (Some(h), Some(l)) = (hex(s[i + 2]), hex(s[i + 3])) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct State {
    /// Bytes of an incomplete line.
    pending: Vec<u8>,
    /// Retained records (since the last `take`).
    records: Vec<Record>,
    /// Records removed by `take` so far.
    drained: u64,
    /// Copy every new record to stderr.
    echo: bool,
}

impl State {
    fn total(&self) -> u64 {
        self.drained + self.records.len() as u64
    }

    /// Handles one complete line; returns `true` if it made a new record.
    fn line(&mut self, line: &[u8]) -> bool {
        if let Some(entry) = line.strip_prefix(b" ") {
            if let Some(last) = self.records.last_mut() {
                if last.origin == Origin::Kmsg && entry.contains(&b'=') {
                    let eq = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
                    let key = unescape(&entry[..eq]);
                    let value = unescape(entry.get(eq + 1..).unwrap_or_default());
                    last.dict.push((key, value));
                    return false;
                }
            }
        }
        self.add(Record::parse(line));
        true
    }

    fn add(&mut self, r: Record) {
        if self.echo {
            let mut s = r.fmt_dmesg();
            s.push('\n');
            write_stderr(s.as_bytes());
        }
        self.records.push(r);
    }
}

/// A thread-safe, line-buffering kernel log. See the module docs.
#[derive(Debug, Default)]
pub struct Console {
    state: Mutex<State>,
    cond: Condvar,
}

impl Console {
    /// An empty console.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies each new record to the process's stderr (rendered with
    /// [`Record::fmt_dmesg`]) when `on`.
    pub fn set_echo(&self, on: bool) {
        self.state.lock().echo = on;
    }

    /// Appends console output. Complete lines become records immediately;
    /// a trailing partial line waits for the rest.
    pub fn push_bytes(&self, bytes: &[u8]) {
        let mut st = self.state.lock();
        let mut added = false;
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..nl], &rest[nl + 1..]);
            if st.pending.is_empty() {
                added |= st.line(head);
            } else {
                let mut line = std::mem::take(&mut st.pending);
                line.extend_from_slice(head);
                added |= st.line(&line);
            }
            rest = tail;
        }
        st.pending.extend_from_slice(rest);
        drop(st);
        if added {
            self.cond.notify_all();
        }
    }

    /// Turns a pending partial line, if any, into a record.
    pub fn flush(&self) {
        let mut st = self.state.lock();
        if st.pending.is_empty() {
            return;
        }
        let line = std::mem::take(&mut st.pending);
        let added = st.line(&line);
        drop(st);
        if added {
            self.cond.notify_all();
        }
    }

    /// Appends a record made by the host (not parsed).
    pub fn push_record(&self, r: Record) {
        self.state.lock().add(r);
        self.cond.notify_all();
    }

    /// A snapshot of the retained records.
    pub fn records(&self) -> Vec<Record> {
        self.state.lock().records.clone()
    }

    /// Removes and returns the retained records.
    pub fn take(&self) -> Vec<Record> {
        let mut st = self.state.lock();
        let taken = std::mem::take(&mut st.records);
        st.drained += taken.len() as u64;
        taken
    }

    /// Number of retained records.
    pub fn len(&self) -> usize {
        self.state.lock().records.len()
    }

    /// Whether no record is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records ever completed, including those removed by [`take`](Self::take).
    pub fn total(&self) -> u64 {
        self.state.lock().total()
    }

    /// Bytes of the current incomplete line.
    pub fn pending_len(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Waits until more than `seen` records have ever been completed (see
    /// [`total`](Self::total)); returns the new total, or `None` on
    /// timeout.
    pub fn wait_new(&self, seen: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.state.lock();
        loop {
            let total = st.total();
            if total > seen {
                return Some(total);
            }
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut st, d).timed_out() && st.total() <= seen {
                        return None;
                    }
                }
                None => self.cond.wait(&mut st),
            }
        }
    }

    /// Waits until a retained record — one already there or a new one —
    /// satisfies `pred`; returns a copy of the first such record, or `None`
    /// on timeout. `pred` runs with the console locked: it must not call
    /// back into this console.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Record) -> bool,
    ) -> Option<Record> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.state.lock();
        let mut next = st.drained; // absolute index of the next record to check
        loop {
            let start = next.saturating_sub(st.drained) as usize;
            if let Some(r) = st.records.iter().skip(start).find(|r| pred(r)) {
                return Some(r.clone());
            }
            next = st.total();
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut st, d).timed_out() && st.total() == next {
                        return None;
                    }
                }
                None => self.cond.wait(&mut st),
            }
        }
    }

    /// All retained records rendered with [`Record::fmt_dmesg`], one per
    /// line.
    pub fn dmesg(&self) -> String {
        let st = self.state.lock();
        let mut s = String::new();
        for r in &st.records {
            s.push_str(&r.fmt_dmesg());
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn parses_full_record() {
        let r = Record::parse(b"6,339,5140900,-,caller=T1;NET: Registered protocol family 10");
        assert_eq!(
            r,
            Record {
                level: 6,
                facility: 0,
                seq: 339,
                timestamp_us: 5_140_900,
                caller: Some(Caller::Task(1)),
                text: "NET: Registered protocol family 10".into(),
                dict: vec![],
                origin: Origin::Kmsg,
            }
        );
        assert_eq!(
            r.fmt_dmesg(),
            "[    5.140900] [T1] NET: Registered protocol family 10"
        );
    }

    #[test]
    fn parses_facility_cpu_caller_and_unknown_fields() {
        let r = Record::parse(b"30,7,0,c,foo=bar,caller=C3;x;y");
        assert_eq!((r.facility, r.level), (3, 6));
        assert_eq!(r.caller, Some(Caller::Cpu(3)));
        assert_eq!(r.text, "x;y");
        assert_eq!(r.fmt_dmesg(), "[    0.000000] [C3] x;y");
        let r = Record::parse(b"4,1,2,-;no caller");
        assert_eq!(r.caller, None);
        assert_eq!(r.fmt_dmesg(), "[    0.000002] no caller");
    }

    #[test]
    fn unescapes_text() {
        let r = Record::parse(b"6,1,1,-;a\\x0ab\\x5cc\\xc3\\xa9 \\xzz \\x4");
        assert_eq!(r.text, "a\nb\\c\u{e9} \\xzz \\x4");
        assert_eq!(unescape(b"\\x"), "\\x");
        assert_eq!(unescape(b"\\xff"), "\u{fffd}");
        assert_eq!(unescape(b"end\\x41"), "endA");
    }

    #[test]
    fn raw_lines_are_kept() {
        let r = Record::parse(b"<3>early oops");
        assert_eq!((r.level, r.facility, r.origin), (3, 0, Origin::Raw));
        assert_eq!(r.text, "early oops");
        let r = Record::parse(b"Linux version 6.x (no header)");
        assert_eq!((r.level, r.origin), (RAW_DEFAULT_LEVEL, Origin::Raw));
        assert_eq!(r.text, "Linux version 6.x (no header)");
        assert_eq!(r.fmt_dmesg(), r.text);
        for bad in [
            &b"a,b,c,d;text"[..],
            b"1,2;short header",
            b"1,2,3,;empty flags",
            b"1,2,3,k=v;flags missing",
            b"99999,1,1,-;facility overflow",
            b"<9999>too big",
            b"<>empty",
            b"",
            b"\xff\xfe binary",
        ] {
            let r = Record::parse(bad);
            assert_eq!(r.origin, Origin::Raw, "{bad:?}");
        }
        assert_eq!(Record::parse(b"<9999>x").text, "<9999>x");
    }

    #[test]
    fn split_writes_and_dictionary_lines() {
        let c = Console::new();
        let input =
            b"6,1,100,-,caller=T5;hello\n SUBSYSTEM=net\n DEVICE=n\\x5ceth0\n4,2,200,-;world\n";
        for b in input.iter() {
            c.push_bytes(std::slice::from_ref(b));
        }
        let rs = c.records();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].text, "hello");
        assert_eq!(
            rs[0].dict,
            vec![
                ("SUBSYSTEM".into(), "net".into()),
                ("DEVICE".into(), "n\\eth0".into())
            ]
        );
        assert_eq!(rs[1].text, "world");
        assert_eq!(c.pending_len(), 0);
    }

    #[test]
    fn several_records_per_write_and_partial_tail() {
        let c = Console::new();
        c.push_bytes(b"6,1,1,-;one\n6,2,2,-;two\n6,3,3,-;thr");
        assert_eq!(c.len(), 2);
        assert_eq!(c.pending_len(), 11);
        c.push_bytes(b"ee\n");
        assert_eq!(c.records()[2].text, "three");
        c.push_bytes(b"trailing raw");
        c.flush();
        c.flush();
        let rs = c.take();
        assert_eq!(rs.len(), 4);
        assert_eq!(rs[3].origin, Origin::Raw);
        assert!(c.is_empty());
        assert_eq!(c.total(), 4);
    }

    #[test]
    fn space_lines_without_kmsg_record_are_raw() {
        let c = Console::new();
        c.push_bytes(b" KEY=orphan\nraw\n indented raw\n");
        let rs = c.records();
        assert_eq!(rs.len(), 3);
        assert!(rs.iter().all(|r| r.origin == Origin::Raw));
        assert_eq!(rs[0].text, " KEY=orphan");
    }

    #[test]
    fn wait_new_and_wait_for() {
        let c = Arc::new(Console::new());
        assert_eq!(c.wait_new(0, Duration::from_millis(20)), None);
        assert!(c.wait_for(Duration::from_millis(20), |_| true).is_none());
        let c2 = c.clone();
        let h = std::thread::spawn(move || {
            for i in 0..5 {
                std::thread::sleep(Duration::from_millis(10));
                c2.push_bytes(format!("6,{i},{i},-;msg {i}\n").as_bytes());
            }
        });
        let r = c
            .wait_for(Duration::from_secs(5), |r| r.text == "msg 3")
            .unwrap();
        assert_eq!(r.seq, 3);
        h.join().unwrap();
        assert_eq!(c.wait_new(0, Duration::ZERO), Some(5));
        // Already-present records match immediately.
        assert!(c.wait_for(Duration::ZERO, |r| r.text == "msg 0").is_some());
        // After take, old records are gone.
        c.take();
        assert!(c
            .wait_for(Duration::from_millis(10), |r| r.text == "msg 0")
            .is_none());
        assert_eq!(c.wait_new(5, Duration::from_millis(10)), None);
    }

    #[test]
    fn a_record_with_newlines_prints_its_prefix_on_every_line() {
        let c = Console::new();
        c.push_bytes(b"6,1,1500000,-,caller=T7;Hello, a\\x0ab!\n6,2,1600000,-;next\n");
        let records = c.records();
        assert_eq!(records.len(), 2, "one record, then the next");
        assert_eq!(records[0].text, "Hello, a\nb!");
        assert_eq!(
            c.dmesg(),
            "[    1.500000] [T7] Hello, a\n[    1.500000] [T7] b!\n[    1.600000] next\n"
        );
    }

    #[test]
    fn dmesg_renders_everything() {
        let c = Console::new();
        c.push_bytes(b"6,1,1500000,-,caller=T0;a\nraw b\n");
        c.push_record(Record {
            text: "host c".into(),
            origin: Origin::Host,
            ..Record::default()
        });
        assert_eq!(c.dmesg(), "[    1.500000] [T0] a\nraw b\nhost c\n");
    }

    /// 32 threads write records concurrently, each in one `push_bytes`
    /// (sometimes two records per write); nothing is lost or torn and each
    /// writer's order is preserved.
    #[test]
    fn thirty_two_concurrent_writers() {
        const PER: u64 = 500;
        let c = Arc::new(Console::new());
        let hs: Vec<_> = (0..32u64)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < PER {
                        let body =
                            format!("writer {t} record {i} {}", "x".repeat((i % 40) as usize));
                        let mut s = format!("6,{i},{t},-,caller=T{t};{body}\n SUB=w{t}\n");
                        i += 1;
                        if i % 3 == 0 && i < PER {
                            s += &format!(
                                "6,{i},{t},-,caller=T{t};writer {t} record {i} {}\n",
                                "x".repeat((i % 40) as usize)
                            );
                            i += 1;
                        }
                        c.push_bytes(s.as_bytes());
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let rs = c.take();
        assert_eq!(rs.len() as u64, 32 * PER);
        let mut next = [0u64; 32];
        for r in &rs {
            assert_eq!(r.origin, Origin::Kmsg, "{r:?}");
            let Some(Caller::Task(t)) = r.caller else {
                panic!("{r:?}")
            };
            let t = t as usize;
            assert_eq!(r.seq, next[t], "writer {t} out of order");
            let want = format!(
                "writer {t} record {} {}",
                r.seq,
                "x".repeat((r.seq % 40) as usize)
            );
            assert_eq!(r.text, want);
            next[t] += 1;
        }
        assert!(next.iter().all(|&n| n == PER));
    }
}
