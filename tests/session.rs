//! Persistent sessions over real sockets: subscriptions and messages that outlive a
//! connection, resends on resume, the offline queue limit, and Clean Session 1.

mod common;

use common::{rumqttc_client, rumqttc_wait, start_broker, text, ConnectOpts, RawClient};
use ringmq::codec::{Ack, Packet, QoS};

/// A persistent 3.1.1 session for `id` with `filter` subscribed at `qos`, then disconnected.
fn persistent_subscriber(addr: std::net::SocketAddr, id: &str, filter: &str, qos: QoS) {
    let mut client = RawClient::connected(addr, ConnectOpts::v311(id).clean(false));
    client.subscribe(&[(filter, qos)]);
    client.disconnect();
}

fn resume(addr: std::net::SocketAddr, id: &str) -> RawClient {
    let (client, connack) = RawClient::connect(addr, ConnectOpts::v311(id).clean(false));
    assert_eq!(connack.code, ringmq::codec::ReasonCode::SUCCESS);
    // [MQTT-3.2.2-2]: Session Present is 1 when the server resumes a stored session.
    assert!(
        connack.session_present,
        "CONNACK session present for a resumed session"
    );
    client
}

#[test]
fn persistent_session_keeps_subscriptions_and_reports_session_present() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "keeper", "kept/topic", QoS::AtLeastOnce);
    let mut subscriber = resume(broker.addr, "keeper");
    // No SUBSCRIBE this time: [MQTT-3.1.2-4] the session kept the subscription.
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("kept/topic", b"still subscribed", QoS::AtLeastOnce, false);
    assert_eq!(text(&subscriber.recv_publish()), "still subscribed");
}

#[test]
fn qos1_and_qos2_messages_published_while_offline_are_delivered_in_order_on_resume() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "offline", "queued", QoS::ExactlyOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    let sent = [
        (QoS::AtLeastOnce, "m1"),
        (QoS::ExactlyOnce, "m2"),
        (QoS::AtLeastOnce, "m3"),
    ];
    for (qos, payload) in sent {
        publisher.publish("queued", payload.as_bytes(), qos, false);
    }
    let mut subscriber = resume(broker.addr, "offline");
    // [MQTT-3.1.2-5]: QoS 1/2 messages for an offline session are stored and delivered.
    for (qos, payload) in sent {
        let got = subscriber.recv_publish();
        assert_eq!((text(&got), got.qos), (payload, qos));
    }
}

#[test]
fn qos0_published_while_offline_is_not_delivered() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "offline", "queued", QoS::ExactlyOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("queued", b"qos0 while offline", QoS::AtMostOnce, false);
    publisher.publish("queued", b"qos1 while offline", QoS::AtLeastOnce, false);
    let mut subscriber = resume(broker.addr, "offline");
    // QoS 0 is not queued for an offline client (mosquitto's default, MQTT-3.1.2-5 "MAY").
    assert_eq!(text(&subscriber.recv_publish()), "qos1 while offline");
}

#[test]
fn offline_queue_keeps_only_queued_messages_max() {
    let broker = start_broker(|limits| limits.queued_messages_max = 5);
    persistent_subscriber(broker.addr, "bounded", "flood", QoS::AtLeastOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for i in 0..10 {
        publisher.publish("flood", format!("m{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    let mut subscriber = resume(broker.addr, "bounded");
    // The first five are kept; the rest were dropped when the queue was full.
    for i in 0..5 {
        assert_eq!(text(&subscriber.recv_publish()), format!("m{i}"));
    }
    publisher.publish("flood", b"sentinel", QoS::AtLeastOnce, false);
    assert_eq!(
        text(&subscriber.recv_publish()),
        "sentinel",
        "more than 5 messages were queued"
    );
}

#[test]
fn unacked_qos1_message_is_resent_with_dup_and_the_same_packet_id_on_resume() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "forgetful", "resend", QoS::AtLeastOnce);
    let mut subscriber = resume(broker.addr, "forgetful");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("resend", b"ack me", QoS::AtLeastOnce, false);
    let first = subscriber.recv_publish_no_ack();
    assert!(!first.dup);
    // The connection drops before the PUBACK.
    drop(subscriber);

    let mut subscriber = resume(broker.addr, "forgetful");
    // [MQTT-4.4.0-1]: unacknowledged PUBLISH packets are resent with their original packet id;
    // [MQTT-3.3.1-1]: DUP is 1 on a redelivery.
    let again = subscriber.recv_publish_no_ack();
    assert_eq!(text(&again), "ack me");
    assert!(again.dup, "a resent PUBLISH has DUP=1");
    assert_eq!(again.packet_id, first.packet_id);
    assert_eq!(again.qos, QoS::AtLeastOnce);
}

#[test]
fn pubrel_is_resent_on_resume_for_a_qos2_message_without_pubcomp() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "half-done", "resend", QoS::ExactlyOnce);
    let mut subscriber = resume(broker.addr, "half-done");
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish("resend", b"twice?", QoS::ExactlyOnce, false);
    let publish = subscriber.recv_publish_no_ack();
    let id = publish.packet_id.expect("QoS 2 has a packet id");
    subscriber.send(&Packet::PubRec(Ack::new(id)));
    subscriber.expect_ack("PUBREL", id);
    // The connection drops before our PUBCOMP.
    drop(subscriber);

    let mut subscriber = resume(broker.addr, "half-done");
    // [MQTT-4.4.0-1]: PUBREL, not the PUBLISH, is resent for a message that got its PUBREC.
    match subscriber.recv() {
        Packet::PubRel(ack) => assert_eq!(ack.packet_id, id),
        other => panic!("expected PUBREL {id} on resume, got {other:?}"),
    }
    subscriber.send(&Packet::PubComp(Ack::new(id)));
    publisher.publish("resend", b"next", QoS::ExactlyOnce, false);
    assert_eq!(text(&subscriber.recv_publish()), "next");
}

#[test]
fn clean_session_discards_the_previous_session() {
    let broker = start_broker(|_| {});
    persistent_subscriber(broker.addr, "fresh", "old/topic", QoS::AtLeastOnce);
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    publisher.publish(
        "old/topic",
        b"queued for the old session",
        QoS::AtLeastOnce,
        false,
    );

    let (mut client, connack) = RawClient::connect(broker.addr, ConnectOpts::v311("fresh"));
    // [MQTT-3.1.2-6]/[MQTT-3.2.2-1]: Clean Session 1 starts afresh; session present is 0.
    assert!(!connack.session_present);
    client.subscribe(&[("new/topic", QoS::AtLeastOnce)]);
    publisher.publish("old/topic", b"old subscription", QoS::AtLeastOnce, false);
    publisher.publish("new/topic", b"sentinel", QoS::AtLeastOnce, false);
    // Neither the queued message nor the old subscription survived.
    let got = client.recv_publish();
    assert_eq!((got.topic.as_str(), text(&got)), ("new/topic", "sentinel"));
}

#[test]
fn rumqttc_persistent_session_receives_messages_published_while_offline() {
    let broker = start_broker(|_| {});
    {
        let (client, mut connection) = rumqttc_client(broker.addr, "rumqttc-persistent", false);
        client
            .subscribe("offline/#", rumqttc::QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        rumqttc_wait(&mut connection, "SUBACK", |p| {
            matches!(p, rumqttc::Packet::SubAck(_)).then_some(())
        });
        // Dropping the connection closes the socket without DISCONNECT.
    }
    let mut publisher = RawClient::connected(broker.addr, ConnectOpts::v311("pub"));
    for i in 0..3 {
        publisher.publish(
            "offline/x",
            format!("m{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
    }
    let (_client, mut connection) = rumqttc_client(broker.addr, "rumqttc-persistent", false);
    let session_present = rumqttc_wait(&mut connection, "CONNACK", |p| match p {
        rumqttc::Packet::ConnAck(ack) => Some(ack.session_present),
        _ => None,
    });
    assert!(session_present);
    for i in 0..3 {
        let got = rumqttc_wait(&mut connection, "PUBLISH", |p| match p {
            rumqttc::Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        });
        assert_eq!(&got.payload[..], format!("m{i}").as_bytes());
        assert_eq!(got.qos, rumqttc::QoS::AtLeastOnce);
    }
}
