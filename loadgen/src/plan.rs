//! What a run will do, decided before any socket opens: every client's id and role, every
//! publisher's topic and expected fan-out, and the settings all clients share.
//!
//! Scenarios build a [`Plan`]; the coordinator deals its clients round-robin to the worker
//! threads; each worker turns a [`ClientSpec`] into a `client::Client`. Because the plan is
//! plain data, the expected delivery counts can be checked against the broker's own topic
//! matcher in unit tests, without a broker.

use ringmq::codec::{ProtocolVersion, QoS};

use crate::stamp::PublisherId;

/// Settings every client of a run shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub payload_bytes: usize,
    /// Outstanding QoS 1/2 messages per publisher (clamped by the broker's Receive Maximum).
    pub window: u32,
    /// Messages per second over all publishers; 0 is max-rate mode.
    pub rate_per_s: u64,
    /// Publishers in the whole run: the stride of the rate schedule.
    pub publishers: u32,
    /// Keep-alive announced in CONNECT; a client idle for half of it sends PINGREQ.
    pub keep_alive_s: u16,
    /// Credentials every CONNECT carries, if any.
    pub login: Option<Login>,
    /// 5.0 Session Expiry Interval in CONNECT (0: none). The session is persistent while the
    /// run lasts, so a broker that logs sessions does; DISCONNECT sets it to 0 at the end, so
    /// none is left behind.
    pub session_expiry_s: u32,
}

/// User name and password for CONNECT (`--username`, `--password`, `--users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name, or with `users > 1` its prefix: client i logs in as `<prefix><i % users>`,
    /// so a run can make every login a different user (no cache on the broker helps then).
    pub username: String,
    pub password: String,
    pub users: u32,
}

impl Login {
    /// The user name the `index`-th client of the run uses.
    pub fn username_for(&self, index: u64) -> String {
        if self.users > 1 {
            format!("{}{}", self.username, index % u64::from(self.users))
        } else {
            self.username.clone()
        }
    }
}

/// One client of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// At most 23 characters, so that MQTT 3.1 brokers accept it [MQTT-3.1.3-5].
    pub client_id: String,
    pub role: RoleSpec,
}

/// What a client does once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSpec {
    /// Holds its connection open (the `conn` scenario).
    Idle,
    Publisher(PublisherSpec),
    Subscriber {
        filter: String,
    },
    /// Stores retained messages on every topic of `topics` before the run, clears them after.
    Flooder {
        topics: RetainedTopics,
    },
    /// Subscribes to `filter`, waits for `expected` retained messages, unsubscribes, repeats.
    RetainedReader {
        filter: String,
        expected: u64,
        rounds_max: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherSpec {
    pub id: PublisherId,
    pub topic: String,
    /// Messages to send at most; the run's duration may end it sooner.
    pub count_max: u64,
    /// Deliveries each message should make (see `accounting::PublisherTally::fanout`).
    pub fanout: u32,
}

/// The retained scenario's topics, generated from an index rather than stored: a million
/// topics would otherwise cost tens of MiB of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedTopics {
    pub prefix: String,
    pub count: u64,
}

impl RetainedTopics {
    /// Topics per second-level branch: `prefix/{i / 100}/{i % 100}` keeps levels short and
    /// gives `+` filters something to select.
    pub const BRANCH: u64 = 100;

    pub fn name(&self, index: u64) -> String {
        format!(
            "{}/{}/{}",
            self.prefix,
            index / Self::BRANCH,
            index % Self::BRANCH
        )
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub settings: Settings,
    pub clients: Vec<ClientSpec>,
}

impl Plan {
    pub fn publishers(&self) -> impl Iterator<Item = &PublisherSpec> {
        self.clients.iter().filter_map(|c| match &c.role {
            RoleSpec::Publisher(p) => Some(p),
            _ => None,
        })
    }

    pub fn count_role(&self, pred: impl Fn(&RoleSpec) -> bool) -> u64 {
        self.clients.iter().filter(|c| pred(&c.role)).count() as u64
    }
}

/// A short tag that keeps one run's topics and client ids apart from every other run's:
/// six hex digits of the pid and the wall clock.
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    let mixed = nanos.wrapping_mul(2_654_435_761) ^ std::process::id().rotate_left(13);
    format!("{:06x}", mixed & 0xFF_FFFF)
}

/// `lg{tag}{kind}{index}`: 2 + 6 + 1 + at most 10 = 19 characters.
pub fn client_id(tag: &str, kind: char, index: u64) -> String {
    format!("lg{tag}{kind}{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_fit_mqtt_3_1() {
        let id = client_id(&run_tag(), 'p', u64::from(u32::MAX));
        assert!(id.len() <= 23, "{id}");
        assert_ne!(client_id("abcdef", 's', 1), client_id("abcdef", 'p', 1));
    }

    #[test]
    fn retained_topics_branch_by_hundreds() {
        let topics = RetainedTopics {
            prefix: "lg/x/r".into(),
            count: 1000,
        };
        assert_eq!(topics.name(0), "lg/x/r/0/0");
        assert_eq!(topics.name(1234), "lg/x/r/12/34");
    }
}
