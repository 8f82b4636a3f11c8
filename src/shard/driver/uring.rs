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

    fn set_nodelay(&self) -> io::Result<()> {
        tokio_uring::net::TcpStream::set_nodelay(self, true)
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
            let buf = if next_bytes == driver.read_buffer_bytes {
                driver.take_buffer()
            } else {
                ReadBuf::new(next_bytes)
            };
            let (result, buf) = stream.read(buf).await;
            match result {
                Ok(0) | Err(_) => {
                    driver.return_buffer(buf);
                    break;
                }
                Ok(n) => {
                    driver.on_read(id, &buf.0[..n]);
                    // A full buffer means more is probably waiting: read big next time.
                    next_bytes = if n == buf.len() {
                        driver.read_buffer_bytes
                    } else {
                        IDLE_READ_BYTES
                    };
                    driver.return_buffer(buf);
                }
            }
        }
        driver.on_closed(id);
    }
}
