//! The only `unsafe` in the load generator: thin wrappers over the libc calls that std does not
//! offer. A timerfd for sub-millisecond pacing (epoll's own timeout is whole milliseconds),
//! `getrusage` for our own CPU time, `RLIMIT_NOFILE` for the connection ceiling, and
//! `IP_BIND_ADDRESS_NO_PORT` so that binding a source address does not pin a port early.
//!
//! Each wrapper turns the C convention (-1 and errno) into `io::Result` and owns nothing but
//! the descriptors it creates.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A one-shot CLOCK_MONOTONIC timer that epoll can wait on, with nanosecond resolution.
#[derive(Debug)]
pub struct TimerFd {
    file: File,
}

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers; a negative result is checked below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns or closes.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TimerFd {
            file: File::from(owned),
        })
    }

    /// Fires once, `after` from now. At least 1 ns: a zero `it_value` would disarm the timer.
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec on our stack; a null old_value is allowed.
        let rc = unsafe { libc::timerfd_settime(self.raw(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes the expiry count so that the next expiry raises a fresh edge.
    pub fn clear(&mut self) {
        let mut expirations = [0u8; 8];
        // WouldBlock (no expiry pending) is the normal case after a spurious wake.
        let _ = self.file.read(&mut expirations);
    }

    pub fn raw(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// User plus system CPU time of this whole process so far, in microseconds.
pub fn process_cpu_us() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right size; getrusage fills it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage returned 0, so the struct is initialised (it was zeroed anyway).
    let usage = unsafe { usage.assume_init() };
    let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Clock ticks per second of the `utime`/`stime` fields in `/proc/PID/stat`.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit on our stack.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// Lets `bind(ip, 0)` defer the choice of port to `connect`, so that a port is unique per
/// (source, destination) pair rather than per source address: more connections per address.
pub fn set_bind_address_no_port(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed alongside.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Restricts the calling thread, and the threads it starts from now on, to `cpus` (`tune`
/// keeps the load generator off the broker's cores).
pub fn pin_process(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data that CPU_ZERO/CPU_SET initialise; sched_setaffinity
    // reads `size_of` bytes of it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_fires_and_clears() {
        let mut timer = TimerFd::new().expect("timerfd");
        timer.arm(Duration::from_micros(200)).expect("arm");
        std::thread::sleep(Duration::from_millis(5));
        let mut buf = [0u8; 8];
        assert_eq!((&timer.file).read(&mut buf).expect("expired"), 8);
        timer.clear();
    }

    #[test]
    fn cpu_time_grows() {
        let before = process_cpu_us();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_us() >= before);
    }
}
