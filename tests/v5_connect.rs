//! MQTT 5.0 CONNECT and CONNACK over real sockets: the server values CONNACK announces
//! (`[protocol]` and `[limits]`), what the client asked for and was told instead (keep-alive,
//! session expiry), response information, and the reason codes of the server's DISCONNECT for
//! connection-level errors (malformed, protocol error, too large, keep-alive, take-over,
//! shutdown).

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    make_publish, rumqttc5_client, rumqttc5_connack, start_broker, start_broker_with, will,
    will_v5, ConnectOpts, RawClient, CLOSE_TIMEOUT,
};
use ringmq::codec::{ByteStr, ConnAck, Packet, ProtocolVersion, QoS, ReasonCode};
use ringmq::config::Limits;

/// CONNACK of a v5 client `id` connected with `opts`, asserting success.
fn connack_of(addr: std::net::SocketAddr, opts: ConnectOpts) -> (RawClient, ConnAck) {
    let (client, connack) = RawClient::connect(addr, opts);
    assert_eq!(connack.code, ReasonCode::SUCCESS, "{connack:?}");
    (client, connack)
}

#[test]
fn connack_announces_the_default_server_values() {
    let broker = start_broker(|_| {});
    let (_client, connack) = connack_of(broker.addr, ConnectOpts::v5("defaults"));
    let p = &connack.properties;
    // Always announced: the broker's packet_size_max (3.2.2.3.6).
    assert_eq!(
        p.maximum_packet_size,
        Some(Limits::default().packet_size_max)
    );
    // protocol.topic_alias_max, default 10 (3.2.2.3.8).
    assert_eq!(p.topic_alias_maximum, Some(10));
    // protocol.receive_maximum, default 1024 (3.2.2.3.3).
    assert_eq!(p.receive_maximum, Some(1024));
    // Everything on by default: the "available" flags and Maximum QoS are absent (= yes / 2).
    assert_eq!(p.maximum_qos, None);
    assert_eq!(p.retain_available, None);
    assert_eq!(p.wildcard_subscription_available, None);
    assert_eq!(p.subscription_identifier_available, None);
    assert_eq!(p.shared_subscription_available, None);
    // Nothing the client asked for was changed, and it chose its own id.
    assert_eq!(p.server_keep_alive_s, None);
    assert_eq!(p.session_expiry_interval_s, None);
    assert_eq!(p.assigned_client_identifier, None);
    // [MQTT-3.1.2-28]: no Request Response Information, no Response Information.
    assert_eq!(p.response_information, None);
}

#[test]
fn connack_announces_configured_limits_and_features_turned_off() {
    let broker = start_broker_with(|c| {
        c.limits.packet_size_max = 4096;
        c.protocol.topic_alias_max = 3;
        c.protocol.receive_maximum = 7;
        c.protocol.maximum_qos = 1;
        c.protocol.retain_available = false;
        c.protocol.wildcard_subscriptions = false;
        c.protocol.subscription_identifiers = false;
        c.protocol.shared_subscriptions = false;
    });
    let (_client, connack) = connack_of(broker.addr, ConnectOpts::v5("limited"));
    let p = &connack.properties;
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.receive_maximum, Some(7));
    // [MQTT-3.2.2-9]: a server without QoS 2 says so.
    assert_eq!(p.maximum_qos, Some(1));
    assert_eq!(p.retain_available, Some(0));
    assert_eq!(p.wildcard_subscription_available, Some(0));
    assert_eq!(p.subscription_identifier_available, Some(0));
    assert_eq!(p.shared_subscription_available, Some(0));
}

#[test]
fn connack_omits_values_equal_to_the_protocol_defaults() {
    // Topic Alias Maximum 0 and Receive Maximum 65535 are what absence means (3.2.2.3).
    let broker = start_broker_with(|c| {
        c.protocol.topic_alias_max = 0;
        c.protocol.receive_maximum = u16::MAX;
    });
    let (_client, connack) = connack_of(broker.addr, ConnectOpts::v5("plain"));
    assert_eq!(connack.properties.topic_alias_maximum, None);
    assert_eq!(connack.properties.receive_maximum, None);

    let broker = start_broker_with(|c| c.protocol.maximum_qos = 0);
    let (_client, connack) = connack_of(broker.addr, ConnectOpts::v5("qos0"));
    assert_eq!(connack.properties.maximum_qos, Some(0));
}

#[test]
fn empty_client_id_gets_an_assigned_identifier_that_names_the_session() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("").props(|p| p.request_response_information = Some(1));
    let (_client, connack) = connack_of(broker.addr, opts);
    // [MQTT-3.2.2-16]/[MQTT-3.1.3-7]: the server tells the client the id it assigned ...
    let assigned = connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("CONNACK has an Assigned Client Identifier");
    assert!(!assigned.is_empty());
    // ... and uses it as the client id, here in the response information.
    assert_eq!(
        connack.properties.response_information.as_ref(),
        Some(&ByteStr::from(format!("reply/{assigned}")))
    );
}

#[test]
fn server_keep_alive_is_sent_only_when_the_client_asks_for_more_than_the_maximum() {
    let broker = start_broker_with(|c| c.protocol.keep_alive_max_s = 30);
    let cases = [(60, Some(30)), (0, Some(30)), (30, None), (10, None)];
    for (asked, told) in cases {
        let opts = ConnectOpts::v5(&format!("ka{asked}")).keep_alive(asked);
        let (_client, connack) = connack_of(broker.addr, opts);
        // 3.2.2.3.14: Server Keep Alive overrides the client's value, 0 ("none") included.
        assert_eq!(
            connack.properties.server_keep_alive_s, told,
            "client asked for {asked} s"
        );
    }
}

#[test]
fn server_keep_alive_is_absent_without_a_configured_maximum() {
    let broker = start_broker(|_| {});
    for asked in [0, u16::MAX] {
        let opts = ConnectOpts::v5(&format!("ka{asked}")).keep_alive(asked);
        let (_client, connack) = connack_of(broker.addr, opts);
        assert_eq!(
            connack.properties.server_keep_alive_s, None,
            "asked {asked}"
        );
    }
}

#[test]
fn server_keep_alive_is_enforced_with_disconnect_0x8d() {
    let broker = start_broker_with(|c| c.protocol.keep_alive_max_s = 1);
    let opts = ConnectOpts::v5("sleepy").keep_alive(60);
    let (mut client, connack) = connack_of(broker.addr, opts);
    assert_eq!(connack.properties.server_keep_alive_s, Some(1));
    let start = Instant::now();
    // [MQTT-3.2.2-21]/[MQTT-3.1.2-22]: the server uses its own value: 1.5 s of silence, not 90.
    client.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "closed after {:?}, before the keep-alive ran out",
        start.elapsed()
    );
}

#[test]
fn keep_alive_timeout_sends_disconnect_0x8d() {
    let broker = start_broker(|_| {});
    let (mut client, _) = connack_of(broker.addr, ConnectOpts::v5("quiet").keep_alive(1));
    // [MQTT-3.1.2-22], 4.13: the server says why before it closes.
    client.expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT);
}

#[test]
fn v311_keep_alive_above_the_maximum_is_refused_with_return_code_0x02() {
    let broker = start_broker_with(|c| c.protocol.keep_alive_max_s = 30);
    let (mut client, connack) =
        RawClient::connect(broker.addr, ConnectOpts::v311("old").keep_alive(60));
    // 3.x has no Server Keep Alive: refused as mosquitto's max_keepalive does.
    assert_eq!(connack.code.to_v3_connack(), 0x02, "{connack:?}");
    client.expect_closed(CLOSE_TIMEOUT);
    let (_ok, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("ok").keep_alive(30));
    assert_eq!(
        connack.code,
        ReasonCode::SUCCESS,
        "exactly the maximum is fine"
    );
}

#[test]
fn session_expiry_above_the_maximum_is_answered_with_the_maximum() {
    let broker = start_broker_with(|c| c.protocol.session_expiry_max_s = 5);
    let (_a, connack) = connack_of(broker.addr, ConnectOpts::v5("long").session_expiry(100));
    // 3.2.2.3.2: the server tells the client the interval it will actually use.
    assert_eq!(connack.properties.session_expiry_interval_s, Some(5));
    let (_b, connack) = connack_of(broker.addr, ConnectOpts::v5("short").session_expiry(3));
    assert_eq!(connack.properties.session_expiry_interval_s, None);
    let (_c, connack) = connack_of(broker.addr, ConnectOpts::v5("none"));
    assert_eq!(connack.properties.session_expiry_interval_s, None);
}

#[test]
fn response_information_is_sent_only_when_requested() {
    let broker = start_broker(|_| {});
    let ask = |id: &str, value: Option<u8>| {
        ConnectOpts::v5(id).props(move |p| p.request_response_information = value)
    };
    let (_a, connack) = connack_of(broker.addr, ask("asks", Some(1)));
    assert_eq!(
        connack.properties.response_information,
        Some(ByteStr::from("reply/asks"))
    );
    // [MQTT-3.1.2-28]: 0 means the server MUST NOT return Response Information.
    let (_b, connack) = connack_of(broker.addr, ask("declines", Some(0)));
    assert_eq!(connack.properties.response_information, None);
    let (_c, connack) = connack_of(broker.addr, ask("silent", None));
    assert_eq!(connack.properties.response_information, None);
}

#[test]
fn response_information_uses_the_configured_prefix() {
    let broker = start_broker_with(|c| c.protocol.response_information_prefix = "rsp/".into());
    let opts = ConnectOpts::v5("me").props(|p| p.request_response_information = Some(1));
    let (_a, connack) = connack_of(broker.addr, opts.clone());
    assert_eq!(
        connack.properties.response_information,
        Some(ByteStr::from("rsp/me"))
    );
    // An empty prefix turns Response Information off.
    let broker = start_broker_with(|c| c.protocol.response_information_prefix = String::new());
    let (_b, connack) = connack_of(broker.addr, opts);
    assert_eq!(connack.properties.response_information, None);
}

#[test]
fn unknown_authentication_method_gets_connack_0x8c() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("auth").props(|p| p.authentication_method = Some("NOPE".into()));
    let (mut client, connack) = RawClient::connect(broker.addr, opts);
    // [MQTT-4.12.0-1]: 0x8C (bad authentication method), then close.
    assert_eq!(
        connack.code,
        ReasonCode::BAD_AUTHENTICATION_METHOD,
        "{connack:?}"
    );
    assert!(!connack.session_present, "[MQTT-3.2.2-6]");
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn malformed_packet_gets_disconnect_0x81() {
    let broker = start_broker(|_| {});
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("garbled"));
    #[rustfmt::skip]
    client.send_raw(&[
        0x36, 6,                 // PUBLISH with both QoS bits set [MQTT-3.3.1-4]
        0x00, 0x01, b'a',        // topic "a"
        0x00, 0x01,              // packet id 1
        0x00,                    // no properties
    ]);
    // 4.13: a Malformed Packet is answered with DISCONNECT 0x81 before the close.
    client.expect_disconnect(ReasonCode::MALFORMED_PACKET);
}

#[test]
fn second_connect_gets_disconnect_0x82() {
    let broker = start_broker(|_| {});
    let opts = ConnectOpts::v5("twice");
    let mut client = RawClient::connected(broker.addr, opts.clone());
    client.send(&opts.to_packet());
    // [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error.
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn packet_larger_than_packet_size_max_gets_disconnect_0x95() {
    let broker = start_broker(|l| l.packet_size_max = 1024);
    let mut client = RawClient::connected(broker.addr, ConnectOpts::v5("big"));
    let big = make_publish("big", &[b'x'; 2000], QoS::AtMostOnce, false);
    client.send(&Packet::Publish(big));
    // 3.2.2.3.6: a packet over the Maximum Packet Size the server announced is 0x95.
    client.expect_disconnect(ReasonCode::PACKET_TOO_LARGE);
}

#[test]
fn takeover_sends_disconnect_0x8e_to_the_old_connection() {
    let broker = start_broker(|_| {});
    let mut old = RawClient::connected(broker.shard(0), ConnectOpts::v5("dev"));
    let mut new = RawClient::connected(broker.shard(1), ConnectOpts::v5("dev"));
    // [MQTT-3.1.4-3]: the existing connection gets 0x8E (session taken over), then is closed.
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER);
    new.ping();
}

#[test]
fn shutdown_sends_disconnect_0x8b_to_v5_clients_and_closes_v311_clients() {
    let broker = start_broker(|_| {});
    let mut v5 = RawClient::connected(broker.addr, ConnectOpts::v5("v5"));
    let mut v311 = RawClient::connected(broker.addr, ConnectOpts::v311("v311"));
    let (done_tx, done_rx) = mpsc::channel();
    // Shutting down joins the shard threads; our clients read meanwhile on this thread.
    std::thread::spawn(move || {
        broker.shutdown();
        let _ = done_tx.send(());
    });
    // 4.13: 0x8B (server shutting down) before the close.
    v5.expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN);
    assert_eq!(v311.expect_closed(CLOSE_TIMEOUT), None);
    done_rx
        .recv_timeout(CLOSE_TIMEOUT)
        .expect("the broker shut down in time");
}

#[test]
fn will_qos_above_maximum_qos_is_refused_with_connack_0x9b() {
    let broker = start_broker_with(|c| c.protocol.maximum_qos = 1);
    let opts = ConnectOpts::v5("w2").will(will("wills/w2", b"x", QoS::ExactlyOnce, false));
    let (mut client, connack) = RawClient::connect(broker.addr, opts);
    // [MQTT-3.2.2-12]: a will the server cannot deliver at its QoS refuses the connection.
    assert_eq!(connack.code, ReasonCode::QOS_NOT_SUPPORTED, "{connack:?}");
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn retained_will_without_retain_available_is_refused_with_connack_0x9a() {
    let broker = start_broker_with(|c| c.protocol.retain_available = false);
    let opts = ConnectOpts::v5("wr").will(will("wills/wr", b"x", QoS::AtLeastOnce, true));
    let (mut client, connack) = RawClient::connect(broker.addr, opts);
    // [MQTT-3.2.2-13].
    assert_eq!(
        connack.code,
        ReasonCode::RETAIN_NOT_SUPPORTED,
        "{connack:?}"
    );
    client.expect_closed(CLOSE_TIMEOUT);
}

#[test]
fn rumqttc_v5_reads_the_server_values() {
    let broker = start_broker_with(|c| {
        c.protocol.keep_alive_max_s = 20;
        c.protocol.session_expiry_max_s = 60;
    });
    let (_client, mut connection) = rumqttc5_client(broker.addr, "rumqttc-v5", |o| {
        o.set_keep_alive(Duration::from_secs(30));
        o.set_request_response_info(Some(1));
        let mut props = o
            .connect_properties()
            .unwrap_or_else(rumqttc::v5::mqttbytes::v5::ConnectProperties::new);
        props.session_expiry_interval = Some(3600);
        o.set_connect_properties(props);
    });
    let connack = rumqttc5_connack(&mut connection);
    assert_eq!(
        connack.code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    let props = connack.properties.expect("a 5.0 CONNACK with properties");
    assert_eq!(props.server_keep_alive, Some(20));
    assert_eq!(props.session_expiry_interval, Some(60));
    assert_eq!(props.topic_alias_max, Some(10));
    assert_eq!(props.receive_max, Some(1024));
    assert_eq!(
        props.max_packet_size,
        Some(Limits::default().packet_size_max)
    );
    assert_eq!(
        props.response_information.as_deref(),
        Some("reply/rumqttc-v5")
    );
}

/// Sends `wire` as a 5.0 client's first packet; asserts CONNACK `code`, then the close.
fn refused_with(wire: &[u8], code: ReasonCode) {
    let broker = start_broker(|_| {});
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
    client.send_raw(wire);
    // 4.13 and 3.2.2.2: a refused CONNECT gets a CONNACK with the reason before the close.
    let connack = client.expect_refused().expect("CONNACK before the close");
    assert_eq!(connack.code, code, "{connack:?}");
}

/// Index of the Connect Flags byte in a short 5.0 CONNECT: fixed header (2), "MQTT", level.
const FLAGS_AT: usize = 2 + 2 + 4 + 1;

#[test]
fn connect_with_a_duplicated_property_gets_connack_0x82() {
    #[rustfmt::skip]
    let wire = [
        0x10, 24,                               // CONNECT, remaining length
        0x00, 0x04, b'M', b'Q', b'T', b'T', 5,  // protocol name and level
        0x02, 0x00, 60,                         // clean start, keep-alive
        10,                                     // properties length
        0x11, 0, 0, 0, 1,                       // Session Expiry Interval
        0x11, 0, 0, 0, 2,                       // Session Expiry Interval, again
        0x00, 0x01, b'd',                       // client id
    ];
    // 3.1.2.11.2: including the Session Expiry Interval twice is a Protocol Error.
    refused_with(&wire, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn connect_with_a_property_not_allowed_in_connect_gets_connack_0x81() {
    let opts = ConnectOpts::v5("alias").props(|p| p.topic_alias = Some(1));
    // 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet.
    refused_with(&opts.to_wire(), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn connect_with_a_property_value_out_of_range_gets_connack_0x82() {
    let opts = ConnectOpts::v5("recv-0").props(|p| p.receive_maximum = Some(0));
    // 3.1.2.11.3: a Receive Maximum of 0 is a Protocol Error.
    refused_with(&opts.to_wire(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn connect_with_the_will_flag_but_no_will_topic_gets_connack_0x81() {
    let mut wire = ConnectOpts::v5("no-will-topic").to_wire();
    wire[FLAGS_AT] |= 0x04;
    // [MQTT-3.1.2-9]: the will flag promises Will Properties, Topic and Payload; the packet
    // ends before them, so it cannot be parsed.
    refused_with(&wire, ReasonCode::MALFORMED_PACKET);
}

#[test]
fn connect_with_will_qos_but_no_will_flag_gets_connack_0x81() {
    let mut wire = ConnectOpts::v5("stray-will-qos").to_wire();
    wire[FLAGS_AT] |= 0x08;
    // [MQTT-3.1.2-11]: without the will flag the will QoS is 0; like the neighbouring Connect
    // Flags rules (reserved bit, will QoS 3) this is a Malformed Packet.
    refused_with(&wire, ReasonCode::MALFORMED_PACKET);
}

#[test]
fn authentication_data_without_a_method_gets_connack_0x82() {
    let opts =
        ConnectOpts::v5("data-only").props(|p| p.authentication_data = Some(b"x"[..].into()));
    // 3.1.2.11.10: Authentication Data without Authentication Method is a Protocol Error.
    refused_with(&opts.to_wire(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn will_with_an_empty_response_topic_gets_connack_0x82() {
    let mut properties = ringmq::codec::Properties::default();
    properties.response_topic = Some(ByteStr::from(""));
    let opts = ConnectOpts::v5("empty-reply").will(will_v5("w", b"x", QoS::AtMostOnce, properties));
    // The Response Topic is a topic name, and topic names are at least one character long
    // [MQTT-4.7.3-1]: the CONNECT parses but breaks the protocol.
    refused_with(&opts.to_wire(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn client_id_longer_than_the_limit_gets_connack_0x85() {
    let broker = start_broker(|limits| limits.client_id_len_max = 8);
    let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
    client.send(&ConnectOpts::v5("123456789").to_packet());
    let connack = client.expect_refused().expect("CONNACK before the close");
    assert_eq!(connack.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
}

#[test]
fn control_characters_in_client_id_user_name_or_will_topic_get_their_connack_codes() {
    let broker = start_broker(|_| {});
    let mut user = ConnectOpts::v5("ctl-user");
    user.username = Some("user\u{1F}".into());
    let cases = [
        // 1.5.4: SHOULD NOT, and the receiver may refuse. Each refusal gets the code for the
        // field: 0x85 client id, 0x86 user name, 0x90 will topic (3.2.2.2).
        (
            ConnectOpts::v5("ctl\u{1}"),
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        ),
        (user, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        (
            ConnectOpts::v5("ctl-will").will(will("w\u{80}", b"x", QoS::AtMostOnce, false)),
            ReasonCode::TOPIC_NAME_INVALID,
        ),
    ];
    for (opts, code) in cases {
        let mut client = RawClient::open(broker.addr, ProtocolVersion::V5);
        client.send(&opts.to_packet());
        let connack = client.expect_refused().expect("CONNACK before the close");
        assert_eq!(connack.code, code, "{opts:?}");
    }
}
