//! The driver's side of TLS and WebSocket connections: each connection's
//! [`crate::transport::Transport`] sits in its handle, between the socket and the shard. Reads
//! go through it before the shard sees them; the writer passes the shard's output through it;
//! what the transport must answer on its own (handshake records, the HTTP 101, pongs, close
//! frames) is written by the same writer, in order.
//!
//! Handshakes (TLS, then the WebSocket upgrade) must finish within `tls_handshake_timeout_s`
//! of accept: a FIFO of deadlines, checked by the ticker. Every entry has the same timeout, so
//! the queue is ordered by construction and each check pops only what has expired.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mesh::Published;
use crate::transport::{Transport, TransportFailure, TransportSpec};

use super::{ConnectionId, Driver, Stream};
use crate::shard::ListenerId;

/// Largest MQTT scratch buffer kept between reads of transport connections; a bigger one
/// (after a large WebSocket frame) is freed.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

/// One listener as a shard's accept loop sees it.
pub struct ListenerRuntime {
    pub id: ListenerId,
    spec: RefCell<TransportSpec>,
    /// Where reloaded TLS certificates are published (SIGHUP), and the generation taken.
    tls_source: Option<(Arc<Published<rustls::ServerConfig>>, Cell<u64>)>,
}

impl ListenerRuntime {
    pub fn new(
        id: ListenerId,
        spec: TransportSpec,
        tls_source: Option<Arc<Published<rustls::ServerConfig>>>,
    ) -> ListenerRuntime {
        let tls_source = tls_source.map(|published| {
            let (_, seen) = published.current();
            (published, Cell::new(seen))
        });
        ListenerRuntime {
            id,
            spec: RefCell::new(spec),
            tls_source,
        }
    }

    /// A new connection's transport, with the newest certificate: connections accepted
    /// after a reload use it, established ones keep theirs.
    pub(super) fn start_transport(
        &self,
    ) -> Result<Option<Transport>, crate::transport::TransportError> {
        if let Some((published, seen)) = &self.tls_source {
            let mut generation = seen.get();
            if let Some(config) = published.newer_than(&mut generation) {
                self.spec.borrow_mut().tls = Some(config);
            }
            seen.set(generation);
        }
        self.spec.borrow().start()
    }
}

/// Per-shard transport state in the driver.
#[derive(Default)]
pub(super) struct Transports {
    /// Handshake deadlines in accept order.
    deadlines: RefCell<VecDeque<(Instant, ConnectionId)>>,
    /// MQTT bytes a read produced, reused across reads.
    scratch: RefCell<Vec<u8>>,
}

impl<S: Stream> Driver<S> {
    /// Starts the handshake clock of a connection that has a transport.
    pub(super) fn handshake_started(&self, id: ConnectionId, now: Instant) {
        let timeout = Duration::from_secs(u64::from(
            self.shard.borrow().limits().tls_handshake_timeout_s,
        ));
        self.transports
            .deadlines
            .borrow_mut()
            .push_back((now + timeout, id));
    }

    /// Bytes read on a connection with a transport. Returns false for a plain connection
    /// (the caller feeds the shard itself).
    pub(super) fn transport_read(self: &Rc<Self>, id: ConnectionId, data: &[u8]) -> bool {
        let mut mqtt = self.transports.scratch.take();
        let (result, identity, must_write) = {
            let mut handles = self.handles.borrow_mut();
            let Some(transport) = handles
                .get_mut(id.index as usize)
                .and_then(|h| h.as_mut())
                .and_then(|h| h.transport.as_deref_mut())
            else {
                return false;
            };
            let was_open = transport.is_open();
            let result = transport.receive(data, &mut mqtt);
            let identity = if !was_open && transport.is_open() {
                transport.peer_common_name()
            } else {
                None
            };
            (
                result,
                identity,
                transport.has_wire() || transport.is_closed(),
            )
        };
        let now = Instant::now();
        {
            let mut shard = self.shard.borrow_mut();
            if let Some(name) = identity {
                shard.set_identity(id, &name);
            }
            if let Err(error) = &result {
                if error.is_failure() {
                    shard.transport_failed(now, id, error.kind(), Some(error));
                }
            }
            if !mqtt.is_empty() {
                shard.handle_read(now, id, &mqtt);
            }
        }
        mqtt.clear();
        if mqtt.capacity() <= SCRATCH_KEEP_BYTES {
            self.transports.scratch.replace(mqtt);
        }
        if must_write {
            self.ensure_writer(id);
        }
        true
    }

    /// Closes connections whose handshake has not finished in time. Called by the ticker.
    pub(super) fn expire_handshakes(self: &Rc<Self>, now: Instant) {
        loop {
            let id = {
                let mut deadlines = self.transports.deadlines.borrow_mut();
                match deadlines.front() {
                    Some(&(deadline, id)) if deadline <= now => {
                        deadlines.pop_front();
                        id
                    }
                    _ => return,
                }
            };
            if !self.shard.borrow().has_connection(id) {
                continue;
            }
            let timed_out = {
                let mut handles = self.handles.borrow_mut();
                match handles
                    .get_mut(id.index as usize)
                    .and_then(|h| h.as_mut())
                    .and_then(|h| h.transport.as_deref_mut())
                {
                    Some(transport) if !transport.is_open() && !transport.is_closed() => {
                        transport.handshake_timed_out();
                        true
                    }
                    _ => false,
                }
            };
            if timed_out {
                self.shard.borrow_mut().transport_failed(
                    now,
                    id,
                    TransportFailure::HandshakeTimeout,
                    None,
                );
                self.ensure_writer(id);
            }
        }
    }

    /// What the writer sends next for a connection: the shard's `output` through the
    /// connection's transport (if it has one) and whatever the transport queued itself; and
    /// whether the socket is to be shut down once that is written.
    pub(super) fn wire_output(
        &self,
        id: ConnectionId,
        output: Option<bytes::Bytes>,
        close: bool,
    ) -> (Option<bytes::Bytes>, bool) {
        // A writer can outlive its connection: spawned, then the reader saw EOF and freed the
        // slot, and a new connection took it before the writer ran. Handles are found by slot
        // index alone, so without this check the stale writer would take the new connection's
        // handshake bytes for the old socket and close the new connection's transport.
        if !self.shard.borrow().has_connection(id) {
            return (output, close);
        }
        let mut handles = self.handles.borrow_mut();
        let Some(transport) = handles
            .get_mut(id.index as usize)
            .and_then(|h| h.as_mut())
            .and_then(|h| h.transport.as_deref_mut())
        else {
            return (output, close);
        };
        if let Some(output) = output {
            // An encryption failure leaves the transport unusable; close.
            if transport.send(&output).is_err() {
                transport.close();
            }
        }
        if close {
            transport.close();
        }
        let closed = transport.is_closed();
        (transport.take_wire(), close || closed)
    }
}
