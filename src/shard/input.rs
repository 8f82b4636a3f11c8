//! Bytes in: what a connection's reads feed the shard ([`Shard::handle_read`]), and the
//! decode loop that turns them into packets under flow control.

use std::time::Instant;

use crate::codec::{self, ByteStr, Decoded, Packet, ProtocolVersion};

use super::{log, ConnState, ConnectionId, Shard};

impl Shard {
    /// Feeds bytes read from a connection: decodes every complete packet and acts on it.
    pub fn handle_read(&mut self, now: Instant, id: ConnectionId, data: &[u8]) {
        // The slab, not `conn_mut`: the listener table is read while the slot is borrowed.
        let Some(conn) = self
            .conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return;
        };
        if conn.state.is_closing() {
            return;
        }
        conn.read_buf
            .get_or_insert_with(Box::default)
            .extend_from_slice(data);
        let transport = self.listeners.transport(conn.listener);
        self.stats.bytes_received += data.len() as u64;
        self.stats.bytes_received_by[transport] += data.len() as u64;
        self.process_input(now, id);
        self.resume_released(now);
    }

    /// Decodes and handles buffered input until it runs out or the connection must wait.
    pub(super) fn process_input(&mut self, now: Instant, id: ConnectionId) {
        let packet_size_max = self.limits.packet_size_max;
        let out_max = self.limits.outbound_buffer_max_bytes as usize;
        loop {
            let restoring = self.awaiting_restored();
            let Some(conn) = self
                .conns
                .get_mut(id.index as usize)
                .filter(|c| c.generation == id.generation)
            else {
                return;
            };
            if conn.throttles > 0 || conn.out.bytes.len() >= out_max || restoring {
                // Flow control: the rest waits until a congested subscriber catches up, or
                // until this client reads what it was sent (`take_output` resumes it). At
                // start-up, until the peers' restored subscriptions are known (`peer.rs`).
                break;
            }
            let version = match conn.state {
                ConnState::AwaitingConnect { .. } => ProtocolVersion::V3_1_1,
                ConnState::Attached { version, .. } => version,
                ConnState::Authenticating => ProtocolVersion::V5,
                ConnState::AwaitingSession { .. }
                | ConnState::Verifying { .. }
                | ConnState::Closing => break,
            };
            let transport = self.listeners.transport(conn.listener);
            let Some(read_buf) = conn.read_buf.as_deref_mut() else {
                break;
            };
            match codec::decode(read_buf, version, packet_size_max) {
                Ok(Decoded::Packet(mut packet)) => {
                    copy_out_of_frame(&mut packet);
                    self.stats.messages_received += 1;
                    self.stats.packets_received_by[transport] += 1;
                    if let Packet::Publish(publish) = &packet {
                        self.stats.publish_received_by[transport][publish.qos as usize] += 1;
                    }
                    self.dispatch(now, id, packet);
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(error) => {
                    let peer = conn.peer.clone();
                    self.stats.malformed_packets += 1;
                    if let Some(suppressed) = self.log.allow(log::LogKind::Malformed, now) {
                        tracing::info!(%peer, %error, suppressed, "closing connection: malformed packet");
                    }
                    self.decode_failed(now, id, error);
                    break;
                }
            }
        }
        if let Some(conn) = self.conn_mut(id) {
            if conn.read_buf.as_ref().is_some_and(|b| b.is_empty()) {
                conn.read_buf = None;
            }
        }
    }
}

/// A CONNECT's client id (and user name) are slices of the frame they came in, and the
/// session keeps the id for its whole life, which would keep the whole frame and its
/// shared-buffer header allocated (~70 bytes per idle connection). Copying them out lets the
/// frame go as soon as the CONNECT is handled.
fn copy_out_of_frame(packet: &mut Packet) {
    if let Packet::Connect(connect) = packet {
        connect.client_id = ByteStr::from(connect.client_id.as_str());
        if let Some(username) = &mut connect.username {
            *username = ByteStr::from(username.as_str());
        }
    }
}
