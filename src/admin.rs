//! The admin thread: serves `GET /metrics` on `metrics_listen` (off unless configured), never on
//! a shard. A scrape reads each shard's latest report (`metrics::ShardReport`, published by the
//! shard's ticker once a second) and renders them (`metrics::render`); a shard does no work
//! for it, and a slow or hostile scraper can only stall this thread.
//!
//! HTTP is the least that a Prometheus server and curl need: one request per connection, at
//! most [`REQUEST_BYTES_MAX`] bytes read within [`REQUEST_TIMEOUT`], `Connection: close`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::mesh::Published;
use crate::metrics::ShardReport;

/// Largest request read; more is answered 431.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;

/// How long a scraper may take to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the idle accept loop checks whether the broker is stopping.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The running admin thread.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Binds `addr` and starts the thread.
    pub fn start(
        addr: SocketAddr,
        reports: Vec<Arc<Published<ShardReport>>>,
    ) -> std::io::Result<Admin> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics_listen {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-admin".into())
            .spawn(move || serve(listener, reports, stopping))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
        Ok(Admin {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: TcpListener, reports: Vec<Arc<Published<ShardReport>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(error) = answer(stream, &reports) {
                    tracing::debug!(%error, "metrics request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(STOP_POLL),
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                std::thread::sleep(STOP_POLL);
            }
        }
    }
}

fn answer(mut stream: TcpStream, reports: &[Arc<Published<ShardReport>>]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let (status, body) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&request) {
            Ok(httparse::Status::Complete(_)) => {
                let path = parsed.path.unwrap_or("");
                let path = path.split('?').next().unwrap_or(path);
                break match (parsed.method, path) {
                    (Some("GET"), "/metrics") => ("200 OK", metrics(reports)),
                    (Some("GET"), _) => ("404 Not Found", "see /metrics\n".to_string()),
                    _ => ("405 Method Not Allowed", String::new()),
                };
            }
            Ok(httparse::Status::Partial) if request.len() < REQUEST_BYTES_MAX => continue,
            Ok(httparse::Status::Partial) => {
                break ("431 Request Header Fields Too Large", String::new())
            }
            Err(_) => break ("400 Bad Request", String::new()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn metrics(reports: &[Arc<Published<ShardReport>>]) -> String {
    let latest: Vec<ShardReport> = reports
        .iter()
        .map(|published| (*published.current().0).clone())
        .collect();
    crate::metrics::render(&latest)
}
