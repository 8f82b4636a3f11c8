//! A broker's CPU time and resident memory, read from `/proc/PID/stat` and
//! `/proc/PID/status`, for `--broker-pid`.
//!
//! CPU seconds per million delivered messages is the figure to compare brokers by on a noisy
//! machine: msgs/s moves with whatever else runs, CPU per message much less. RSS before and
//! after opening N connections gives bytes per connection.

use std::io;

use serde::Serialize;

use crate::sys;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ProcSample {
    /// utime + stime, all threads.
    pub cpu_us: u64,
    pub rss_bytes: u64,
}

impl ProcSample {
    /// CPU microseconds from `earlier` to `self`.
    pub fn cpu_us_since(&self, earlier: &ProcSample) -> u64 {
        self.cpu_us.saturating_sub(earlier.cpu_us)
    }
}

/// Reads `pid` now.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let malformed =
        |what| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/{what}"));
    let cpu_us =
        cpu_us_of_stat(&stat, sys::clock_ticks_per_s()).ok_or_else(|| malformed("stat"))?;
    let rss_bytes = rss_bytes_of_status(&status).ok_or_else(|| malformed("status"))?;
    Ok(ProcSample { cpu_us, rss_bytes })
}

/// utime + stime (fields 14 and 15) in microseconds. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn cpu_us_of_stat(stat: &str, ticks_per_s: u64) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come field 3 (state) onwards: utime is the 12th of those.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_s.max(1))
}

/// `VmRSS:  1234 kB` in bytes.
fn rss_bytes_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let stat = "4242 (my) (broker 1) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 150 0 0 20 0 4 0";
        assert_eq!(cpu_us_of_stat(stat, 100), Some(4_000_000));
        assert_eq!(cpu_us_of_stat("garbage", 100), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tringmq\nVmPeak:\t  9000 kB\nVmRSS:\t    1536 kB\nThreads:\t3\n";
        assert_eq!(rss_bytes_of_status(status), Some(1536 * 1024));
        assert_eq!(rss_bytes_of_status("Name: x\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
    }
}
