//! The worker's socket work: starting and expiring connects, reading on readiness, writing
//! dirty connections once per loop turn, and shedding a connection that fails.
//!
//! Sockets are edge-triggered, so a read stops only at WouldBlock, at a short read (the
//! buffer was emptied; new data raises a new edge), or at the per-event budget (then the
//! connection is read again next turn). A write stops at WouldBlock and waits for the
//! writable edge.

use std::io::{ErrorKind, Read, Write};

use bytes::{Buf, BytesMut};
use mio::Interest;

use crate::client::{Client, ClientError, Ctx};
use crate::clock::MonoNs;
use crate::phase::Phase;
use crate::transport::{Transport, TransportError};

use super::{
    net, Worker, CONNECTS_IN_FLIGHT_MAX, READS_PER_EVENT_MAX, SEAL_BATCH_MAX_BYTES, TIMER_TOKEN,
    WAKER_TOKEN,
};

impl Worker {
    pub(super) fn handle_events(&mut self, now: MonoNs) {
        let mut events = std::mem::replace(&mut self.events, mio::Events::with_capacity(0));
        for event in events.iter() {
            match event.token() {
                WAKER_TOKEN => {}
                TIMER_TOKEN => {
                    self.timer.clear();
                    self.timer_armed = None;
                }
                token => {
                    let readable = event.is_readable() || event.is_read_closed();
                    self.on_ready(
                        token.0,
                        readable,
                        event.is_writable() || event.is_error(),
                        now,
                    );
                }
            }
        }
        events.clear();
        self.events = events;
    }

    fn on_ready(&mut self, i: usize, readable: bool, writable: bool, now: MonoNs) {
        if i >= self.conns.len() || self.conns[i].stream.is_none() {
            return;
        }
        if self.conns[i].client.is_connecting() && !self.conns[i].transport.is_started() {
            match self.check_connected(i) {
                Ok(true) => {
                    let conn = &mut self.conns[i];
                    if let Err(error) = conn.transport.start(&mut conn.wire) {
                        return self.fail(i, error.to_string(), now);
                    }
                    if conn.transport.is_open() {
                        conn.client.on_transport_open();
                    }
                    self.mark_dirty(i);
                }
                Ok(false) => return,
                Err(why) => return self.fail(i, why, now),
            }
        }
        if writable && self.conns[i].write_blocked {
            self.conns[i].write_blocked = false;
            self.mark_dirty(i);
            if self.conns[i].client.is_ready() {
                self.enqueue(i);
            }
        }
        if readable {
            self.read(i, now);
        }
    }

    /// Whether a non-blocking connect has completed; an error if it failed.
    fn check_connected(&mut self, i: usize) -> Result<bool, String> {
        let Some(stream) = &self.conns[i].stream else {
            return Ok(false);
        };
        match stream.take_error() {
            Ok(Some(error)) | Err(error) => return Err(format!("connect: {error}")),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    pub(super) fn read(&mut self, i: usize, now: MonoNs) {
        for _ in 0..READS_PER_EVENT_MAX {
            let conn = &mut self.conns[i];
            let Some(stream) = &mut conn.stream else {
                return;
            };
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => return self.fail(i, ClientError::ClosedByBroker(None).to_string(), now),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, format!("read: {e}"), now),
            };
            let received = conn.transport.receive(
                &self.scratch[..n],
                conn.client.inbound_mut(),
                &mut conn.wire,
            );
            if let Err(error) = received {
                return self.fail(i, error.to_string(), now);
            }
            if conn.client.is_connecting() && conn.transport.is_open() {
                // TLS and the upgrade are done (their time counts as connect time): CONNECT.
                conn.client.on_transport_open();
            }
            let mut ctx = Ctx {
                now,
                phase: self.phase,
                run: self.run,
                measure: &mut self.measure,
            };
            match conn.client.on_bytes(&mut ctx) {
                Ok(wake) => {
                    if wake {
                        self.enqueue(i);
                    }
                    self.mark_dirty(i);
                }
                Err(error) => return self.fail(i, error.to_string(), now),
            }
            if n < self.scratch.len() {
                return;
            }
        }
        self.read_again.push(i);
    }

    pub(super) fn flush_dirty(&mut self, now: MonoNs) {
        for i in std::mem::take(&mut self.dirty) {
            self.conns[i].dirty = false;
            self.flush(i, now);
        }
    }

    fn flush(&mut self, i: usize, now: MonoNs) {
        let conn = &mut self.conns[i];
        let Some(stream) = &mut conn.stream else {
            return;
        };
        if conn.write_blocked || !conn.transport.is_started() {
            return;
        }
        let plain = conn.transport.is_plain();
        loop {
            if !plain && conn.wire.is_empty() {
                if let Err(error) = seal(&mut conn.transport, &mut conn.client, &mut conn.wire) {
                    return self.fail(i, error.to_string(), now);
                }
            }
            // Plain TCP writes the client's buffer itself; nothing is copied.
            let out = if plain {
                conn.client.outbound_mut()
            } else {
                &mut conn.wire
            };
            if out.is_empty() {
                break;
            }
            match stream.write(out) {
                Ok(0) => return self.fail(i, "write: connection closed".into(), now),
                Ok(n) => {
                    out.advance(n);
                    conn.last_write_at = now;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.write_blocked = true;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("write: {e}"), now),
            }
        }
        if conn.client.is_closed() {
            self.release_socket(i);
        }
    }

    pub(super) fn start_connects(&mut self, now: MonoNs) {
        if self.phase != Phase::Setup {
            return;
        }
        while self.next_connect < self.conns.len() {
            let settled = self.measure.counters.ready + self.measure.counters.failed;
            if self.next_connect as u64 - settled >= CONNECTS_IN_FLIGHT_MAX {
                return;
            }
            let due = match &self.connect_schedule {
                Some(schedule) => schedule.due(self.next_connect as u64),
                None => now,
            };
            if due > now {
                return;
            }
            let i = self.next_connect;
            self.next_connect += 1;
            self.start_connect(i, due, now);
        }
    }

    fn start_connect(&mut self, i: usize, due: MonoNs, now: MonoNs) {
        let global = i * self.config.threads + self.config.index;
        let source = net::source_ip(self.config.target, global, self.config.source_ips);
        let mut ctx = Ctx {
            now,
            phase: self.phase,
            run: self.run,
            measure: &mut self.measure,
        };
        self.conns[i].client.on_connect_started(due, &mut ctx);
        let seed = self.next_seed();
        self.conns[i].transport = match Transport::new(&self.config.transport, seed) {
            Ok(transport) => transport,
            Err(e) => return self.fail(i, e.to_string(), now),
        };
        let mut stream = match net::connect(self.config.target, source) {
            Ok(stream) => stream,
            Err(e) => return self.fail(i, format!("connect: {e}"), now),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, mio::Token(i), interest)
        {
            return self.fail(i, format!("register: {e}"), now);
        }
        self.conns[i].stream = Some(stream);
        self.connecting
            .push_back((now.plus(self.config.connect_timeout), i));
    }

    /// Fails connections not ready by their deadline (TCP, CONNACK and SUBACK together).
    pub(super) fn expire_connects(&mut self, now: MonoNs) {
        while let Some(&(deadline, i)) = self.connecting.front() {
            let client = &self.conns[i].client;
            if client.is_ready() || client.is_closed() {
                self.connecting.pop_front();
                continue;
            }
            if deadline > now {
                return;
            }
            self.connecting.pop_front();
            let timeout = self.config.connect_timeout;
            self.fail(
                i,
                format!("not ready within the connect timeout of {timeout:?}"),
                now,
            );
        }
    }

    /// Sheds one connection: an operating error, counted, reported, never fatal to the run.
    pub(super) fn fail(&mut self, i: usize, why: String, now: MonoNs) {
        if self.conns[i].client.is_closed() {
            return self.release_socket(i);
        }
        let was_ready = self.conns[i].client.is_ready();
        let mut ctx = Ctx {
            now,
            phase: self.phase,
            run: self.run,
            measure: &mut self.measure,
        };
        self.conns[i].client.close(&mut ctx);
        self.release_socket(i);
        if self.phase == Phase::Stop {
            return; // brokers close connections at DISCONNECT; that is not a failure
        }
        let counters = &mut self.measure.counters;
        if was_ready {
            counters.dropped += 1;
        } else {
            counters.failed += 1;
        }
        let client = self.config.index + i * self.config.threads;
        self.shared.record_error(format!("client {client}: {why}"));
    }

    fn release_socket(&mut self, i: usize) {
        if let Some(mut stream) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }
}

/// Wraps the next batch of the client's output for the wire, once the wire has drained: what
/// the socket cannot take stays in the client's buffer, where a publisher sees it as backlog.
/// A closed client's last bytes are followed by the transport's own goodbye.
fn seal(
    transport: &mut Transport,
    client: &mut Client,
    wire: &mut BytesMut,
) -> Result<(), TransportError> {
    let out = client.outbound_mut();
    if transport.is_open() && !out.is_empty() {
        let batch = out.split_to(out.len().min(SEAL_BATCH_MAX_BYTES));
        transport.send(&batch, wire)?;
    } else if client.is_closed() {
        transport.close(wire);
    }
    Ok(())
}
