//! io_uring sockets (tokio-uring).

use super::*;

impl Stream for tokio_uring::net::TcpStream {
    async fn write_all(&self, bytes: Bytes) -> io::Result<()> {
        let (result, _) = tokio_uring::net::TcpStream::write_all(self, bytes).await;
        result
    }

    fn shutdown(&self) {
        // Errors mean the socket is already gone, which is what we wanted.
        let _ = tokio_uring::net::TcpStream::shutdown(self, Shutdown::Both);
    }
}

pub async fn accept_loop(
    driver: Rc<Driver<tokio_uring::net::TcpStream>>,
    listener: tokio_uring::net::TcpListener,
    runtime: ListenerRuntime,
) {
    let listener = &listener;
    super::accept_loop(driver, runtime, move || listener.accept(), reader).await
}

/// Feeds one connection's bytes to the shard until EOF. Kept at most
/// [`READER_FUTURE_BYTES_MAX`]: no locals but the read itself live across its await, and
/// it is an `async move` block because an `async fn` stores its arguments twice.
#[allow(
    clippy::manual_async_fn,
    reason = "async fn stores its arguments twice"
)]
pub(super) fn reader(
    driver: Rc<Driver<tokio_uring::net::TcpStream>>,
    stream: Rc<tokio_uring::net::TcpStream>,
    id: ConnectionId,
) -> impl Future<Output = ()> {
    async move {
        let mut next_bytes = CONNECT_READ_BYTES;
        loop {
            if driver.read_gated(id) {
                Box::pin(driver.read_gate(id)).await;
            }
            let (result, buf) = stream.read(ReadBuf::new(next_bytes)).await;
            match result {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    driver.on_read(id, &buf.0[..n]);
                    // A full buffer means more is waiting: take it now, without another
                    // io_uring round trip, and go back to a tiny read (see `drain_ready`).
                    if n == buf.len() {
                        drain_ready(&driver, &stream, id);
                    }
                    next_bytes = IDLE_READ_BYTES;
                }
            }
        }
        driver.on_closed(id);
    }
}

/// `recv` calls at most per wakeup in [`drain_ready`]: bounds how long one busy connection
/// keeps the shard from its others (4 x `read_buffer_bytes`, 64 KiB by default).
pub const DRAIN_READS_MAX: usize = 16;

/// Reads what is already in the socket with non-blocking `recv` calls into the shard's
/// pooled buffer, until the socket is drained, the connection is gated, or
/// [`DRAIN_READS_MAX`] reads were made.
///
/// Why not a full-size io_uring read next: a posted read owns its buffer until data comes, so
/// a connection that goes quiet would hold 16 KiB; and the tiny read that follows a partial
/// one cut QoS 1 throughput by a further round trip per burst (measured: 0.23 TCP segments
/// and 1.03 CPU-s per million messages against 0.13 and 0.85 with full reads). The tiny read
/// is the readiness signal; this takes the rest at one syscall, like the epoll backend.
fn drain_ready(
    driver: &Rc<Driver<tokio_uring::net::TcpStream>>,
    stream: &tokio_uring::net::TcpStream,
    id: ConnectionId,
) {
    use std::os::fd::AsRawFd;
    for _ in 0..DRAIN_READS_MAX {
        if driver.read_gated(id) {
            return;
        }
        let mut buf = driver.take_buffer();
        // SAFETY: `buf` is an initialised, writable block of `buf.len()` bytes that lives
        // across the call; `recv` writes at most that many. MSG_DONTWAIT keeps the (blocking)
        // socket from ever blocking the shard thread.
        let got = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.0.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        // EOF, EAGAIN or an error: the next io_uring read reports EOF and errors itself.
        let Ok(n @ 1..) = usize::try_from(got) else {
            driver.return_buffer(buf);
            return;
        };
        driver.on_read(id, &buf.0[..n]);
        let full = n == buf.len();
        driver.return_buffer(buf);
        if !full {
            return;
        }
    }
}
