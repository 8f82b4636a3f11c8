//! epoll sockets (tokio's own), the fallback when io_uring is blocked.

use super::*;

impl Stream for tokio::net::TcpStream {
    async fn write_all(&self, bytes: Bytes) -> io::Result<()> {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            self.writable().await?;
            match self.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn shutdown(&self) {
        let _ = socket2::SockRef::from(self).shutdown(Shutdown::Both);
    }
}

pub async fn accept_loop(
    driver: Rc<Driver<tokio::net::TcpStream>>,
    listener: tokio::net::TcpListener,
    runtime: ListenerRuntime,
) {
    let listener = &listener;
    super::accept_loop(driver, runtime, move || listener.accept(), reader).await
}

/// Feeds one connection's bytes to the shard until EOF. Waits for readiness first, then
/// reads into the shard's pooled buffer: an idle connection holds no buffer at all. An
/// `async move` block for the reason given on the io_uring reader.
#[allow(
    clippy::manual_async_fn,
    reason = "async fn stores its arguments twice"
)]
pub(super) fn reader(
    driver: Rc<Driver<tokio::net::TcpStream>>,
    stream: Rc<tokio::net::TcpStream>,
    id: ConnectionId,
) -> impl Future<Output = ()> {
    async move {
        loop {
            if driver.read_gated(id) {
                Box::pin(driver.read_gate(id)).await;
            }
            // Readiness without `readable()`: its future would add ~100 bytes to the task.
            if std::future::poll_fn(|cx| stream.poll_read_ready(cx))
                .await
                .is_err()
            {
                break;
            }
            let mut buf = driver.take_buffer();
            let result = stream.try_read(&mut buf.0);
            if let Ok(n @ 1..) = result {
                driver.on_read(id, &buf.0[..n]);
            }
            driver.return_buffer(buf);
            match result {
                Ok(0) => break,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => break,
                _ => {}
            }
        }
        driver.on_closed(id);
    }
}
