//! Tests of the auth module: the RFC 7677 vector, round trips, the unknown-user disguise,
//! malformed and hostile input on both sides, and the config format.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use proptest::prelude::*;

use super::scram::verifier_string;
use super::scram_wire::{b64_decode, escape_saslname, unescape_saslname};
use super::*;
use crate::codec::ReasonCode;

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

/// `user`/`pencil` with the RFC 7677 salt (pre-hashed), `plain`/`secret` as a plain password,
/// and a user whose name needs saslname escaping. Built once: plain passwords cost `Hi`.
fn server() -> &'static ScramSha256 {
    static SERVER: OnceLock<ScramSha256> = OnceLock::new();
    SERVER.get_or_init(|| {
        let salt = b64_decode(RFC_SALT).expect("RFC salt is base64");
        let users = BTreeMap::from([
            ("user".to_owned(), verifier_string("pencil", &salt, 4096)),
            ("plain".to_owned(), "secret".to_owned()),
            ("a,b=c".to_owned(), "commas".to_owned()),
        ]);
        ScramSha256::from_users(&users).expect("valid users")
    })
}

fn failure_code(step: &AuthStep) -> Option<ReasonCode> {
    match step {
        AuthStep::Failure { code, .. } => Some(*code),
        _ => None,
    }
}

fn continue_data(step: AuthStep) -> Bytes {
    match step {
        AuthStep::Continue(data) => data,
        other => panic!("expected Continue, got {other:?}"),
    }
}

/// Runs a whole exchange with the real client; returns the server's last step.
fn exchange(method: &dyn AuthMethod, user: &str, password: &str) -> (ScramClient, AuthStep) {
    let mut client = ScramClient::new(user, password).expect("random nonce");
    let (mut conversation, step) = method.start(&client.client_first());
    let server_first = continue_data(step);
    let client_final = client
        .handle_server_first(&server_first)
        .expect("server-first is well formed");
    let last = conversation.step(&client_final);
    (client, last)
}

/// A conversation waiting for client-final, and the server-first it sent.
fn after_client_first(client_first: &str) -> (Box<dyn AuthConversation>, String) {
    let (conversation, step) = server().start(client_first.as_bytes());
    let server_first = continue_data(step);
    let text = String::from_utf8(server_first.to_vec()).expect("server-first is UTF-8");
    (conversation, text)
}

#[test]
fn rfc7677_test_vector() {
    let mut client = ScramClient::with_nonce("user", "pencil", RFC_CLIENT_NONCE);
    let client_first = client.client_first();
    assert_eq!(&client_first[..], b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");

    let (mut conversation, step) = server().start_with_nonce(&client_first, RFC_SERVER_NONCE);
    let server_first = continue_data(step);
    let expected_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                          s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    assert_eq!(&server_first[..], expected_first.as_bytes());

    let client_final = client.handle_server_first(&server_first).expect("valid");
    let expected_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                          p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(&client_final[..], expected_final.as_bytes());

    let step = conversation.step(&client_final);
    let server_final = Bytes::from_static(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    match step {
        AuthStep::Success { data, username } => {
            assert_eq!(data, Some(server_final.clone()));
            assert_eq!(username.as_str(), "user");
        }
        other => panic!("expected Success, got {other:?}"),
    }
    assert_eq!(client.verify_server_final(&server_final), Ok(()));
}

#[test]
fn round_trip_through_the_registry() {
    let users = BTreeMap::from([("alice".to_owned(), "wonderland".to_owned())]);
    let auth = Authenticator::from_scram_users(&users).expect("valid users");
    assert!(!auth.is_empty());
    assert!(auth.lookup("SCRAM-SHA-1").is_none());
    let method = auth.lookup(SCRAM_SHA_256).expect("SCRAM registered");
    assert_eq!(method.name(), "SCRAM-SHA-256");

    let (mut client, last) = exchange(method, "alice", "wonderland");
    let AuthStep::Success { data, username } = last else {
        panic!("expected Success, got {last:?}");
    };
    assert_eq!(username.as_str(), "alice");
    let data = data.expect("server-final");
    assert_eq!(client.verify_server_final(&data), Ok(()));
}

#[test]
fn empty_initial_data_gets_an_empty_challenge() {
    let mut client = ScramClient::new("plain", "secret").expect("random nonce");
    let (mut conversation, step) = server().start(b"");
    assert_eq!(step, AuthStep::Continue(Bytes::new()));
    let server_first = continue_data(conversation.step(&client.client_first()));
    let client_final = client.handle_server_first(&server_first).expect("valid");
    let last = conversation.step(&client_final);
    assert!(matches!(last, AuthStep::Success { .. }), "{last:?}");
    // A second empty message is not a second challenge.
    let (mut conversation, _) = server().start(b"");
    assert!(failure_code(&conversation.step(b"")).is_some());
}

#[test]
fn user_names_are_escaped_on_the_wire() {
    let client = ScramClient::new("a,b=c", "commas").expect("random nonce");
    assert!(client.client_first().starts_with(b"n,,n=a=2Cb=3Dc,r="));
    let (_, last) = exchange(server(), "a,b=c", "commas");
    assert!(matches!(last, AuthStep::Success { .. }), "{last:?}");

    assert_eq!(escape_saslname("=,x"), "=3D=2Cx");
    assert_eq!(unescape_saslname("=3D=2Cx").as_deref(), Some("=,x"));
    for bad in ["", "=", "=2", "=2c", "=41", "x=", "é=3"] {
        assert_eq!(unescape_saslname(bad), None, "{bad:?}");
    }
}

#[test]
fn wrong_password_is_not_authorized() {
    let (mut client, last) = exchange(server(), "plain", "wrong");
    assert_eq!(failure_code(&last), Some(ReasonCode::NOT_AUTHORIZED));
    // A client that got no server-final cannot be talked into success.
    assert!(client.verify_server_final(b"v=").is_err());
}

#[test]
fn unknown_user_looks_like_a_known_one() {
    let shape = |user: &str| {
        let first = format!("n,,n={user},r=abcdefgh");
        let (_, server_first) = after_client_first(&first);
        let attrs: Vec<String> = server_first.split(',').map(str::to_owned).collect();
        assert_eq!(attrs.len(), 3, "{server_first}");
        let salt = b64_decode(&attrs[1][2..]).expect("salt is base64");
        (attrs[0].len(), salt, attrs[2].clone())
    };
    let (known_nonce, known_salt, known_i) = shape("plain");
    let (ghost_nonce, ghost_salt, ghost_i) = shape("ghost");
    assert_eq!(known_nonce, ghost_nonce);
    assert_eq!(known_salt.len(), ghost_salt.len());
    assert_eq!(known_i, ghost_i);
    // Deterministic per name, as a real user's salt is, and different between names.
    assert_eq!(shape("ghost").1, ghost_salt);
    assert_ne!(shape("phantom").1, ghost_salt);

    let (_, unknown) = exchange(server(), "ghost", "secret");
    let (_, wrong) = exchange(server(), "plain", "wrong");
    assert_eq!(unknown, wrong, "same code and same why");
}

#[test]
fn malformed_client_first_fails() {
    let long = format!("n,,n=user,r={}", "x".repeat(AUTH_DATA_MAX_BYTES));
    let cases: &[(&[u8], ReasonCode)] = &[
        (b"n", ReasonCode::PROTOCOL_ERROR),
        (b"n,", ReasonCode::PROTOCOL_ERROR),
        (b"n,,", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=user", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=user,r=", ReasonCode::PROTOCOL_ERROR),
        (b"n,,r=abc", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=,r=abc", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=us=er,r=abc", ReasonCode::PROTOCOL_ERROR),
        (b"n,,m=ext,n=user,r=abc", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=user,r=abc,!bad", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=user,r=ab c", ReasonCode::PROTOCOL_ERROR),
        (b"x,,n=user,r=abc", ReasonCode::PROTOCOL_ERROR),
        (b"n,,n=\xff,r=abc", ReasonCode::PROTOCOL_ERROR),
        (long.as_bytes(), ReasonCode::PROTOCOL_ERROR),
        (
            b"p=tls-unique,,n=user,r=abc",
            ReasonCode::BAD_AUTHENTICATION_METHOD,
        ),
        (b"n,a=other,n=user,r=abc", ReasonCode::NOT_AUTHORIZED),
        (b"n,x=user,n=user,r=abc", ReasonCode::PROTOCOL_ERROR),
    ];
    for (data, code) in cases {
        let (mut conversation, step) = server().start(data);
        let shown = String::from_utf8_lossy(data);
        assert_eq!(failure_code(&step), Some(*code), "{shown}");
        // Finished: anything more is refused, not a panic.
        assert!(
            failure_code(&conversation.step(b"c=biws")).is_some(),
            "{shown}"
        );
    }
}

#[test]
fn gs2_variants_that_are_accepted() {
    for first in [
        "y,,n=user,r=abc",
        "n,a=user,n=user,r=abc",
        "n,,n=user,r=abc,x=extension",
    ] {
        let (conversation, step) = server().start(first.as_bytes());
        assert!(matches!(step, AuthStep::Continue(_)), "{first}: {step:?}");
        drop(conversation);
    }
}

#[test]
fn malformed_client_final_fails() {
    let client_first = "n,,n=user,r=abc";
    // `{n}` stands for the nonce of each conversation: the server half is random.
    let proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let oversize = format!("c=biws,r={{n}},{proof}{}", "A".repeat(AUTH_DATA_MAX_BYTES));
    let cases = [
        String::new(),
        "c=biws".to_owned(),
        "c=biws,r={n}".to_owned(),
        "c=biws,r={n},p=".to_owned(),
        "c=biws,r={n},p=not base64!".to_owned(),
        "c=biws,r={n},p=c2hvcnQ=".to_owned(),
        format!("c=biws,r={{n}}x,{proof}"),
        format!("c=biws,r=abc,{proof}"),
        format!("c=eSws,r={{n}},{proof}"),
        format!("c=cD10bHMtdW5pcXVlLCw=,r={{n}},{proof}"),
        format!("c=,r={{n}},{proof}"),
        format!("r={{n}},c=biws,{proof}"),
        format!("c=biws,r={{n}},!,{proof}"),
        format!("c=biws,r={{n}},{proof},x=after"),
        oversize,
    ];
    let nonce_of = |server_first: &str| {
        let end = server_first.find(',').expect("r= then s=");
        server_first[2..end].to_owned()
    };
    for case in &cases {
        let (mut conversation, server_first) = after_client_first(client_first);
        let message = case.replace("{n}", &nonce_of(&server_first));
        let step = conversation.step(message.as_bytes());
        let code = failure_code(&step);
        assert_eq!(code, Some(ReasonCode::PROTOCOL_ERROR), "{case:?}: {step:?}");
    }
    // Well formed but forged: the proof is the RFC's, for another nonce.
    let (mut conversation, server_first) = after_client_first(client_first);
    let forged = format!("c=biws,r={},{proof}", nonce_of(&server_first));
    let step = conversation.step(forged.as_bytes());
    assert_eq!(failure_code(&step), Some(ReasonCode::NOT_AUTHORIZED));
    assert!(failure_code(&conversation.step(forged.as_bytes())).is_some());
}

#[test]
fn client_refuses_hostile_servers() {
    let fresh = || ScramClient::with_nonce("user", "pencil", "abc");
    let cases: &[(&[u8], ScramError)] = &[
        (
            b"",
            ScramError::Malformed("server-first has no valid r= nonce"),
        ),
        (b"r=xyz,s=QUJD,i=4096", ScramError::NonceMismatch),
        (b"r=abc,s=QUJD,i=4096", ScramError::NonceMismatch),
        (
            b"r=abcd,s=QUJD,i=4294967295",
            ScramError::Iterations(u32::MAX),
        ),
        (b"r=abcd,s=QUJD,i=1", ScramError::Iterations(1)),
        (
            b"r=abcd,s=!!,i=4096",
            ScramError::Malformed("server-first has no valid s= salt"),
        ),
        (
            b"r=abcd,s=QUJD,i=x",
            ScramError::Malformed("server-first has no valid i= iteration count"),
        ),
        (b"\xff", ScramError::Malformed("not UTF-8")),
    ];
    for (data, error) in cases {
        let got = fresh().handle_server_first(data);
        assert_eq!(
            got.as_ref(),
            Err(error),
            "{}",
            String::from_utf8_lossy(data)
        );
    }
    let mut client = fresh();
    assert!(client.verify_server_final(b"v=").is_err(), "out of order");
    let mut client = fresh();
    client
        .handle_server_first(b"r=abcd,s=QUJD,i=4096")
        .expect("valid");
    assert!(client.handle_server_first(b"r=abcd,s=QUJD,i=4096").is_err());
    let refused = client.verify_server_final(b"e=invalid-proof");
    assert_eq!(refused, Err(ScramError::Server("invalid-proof".to_owned())));
    let mut client = fresh();
    client
        .handle_server_first(b"r=abcd,s=QUJD,i=4096")
        .expect("valid");
    let forged = client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    assert_eq!(forged, Err(ScramError::BadServerSignature));
}

#[test]
fn config_accepts_verifiers_and_names_bad_users() {
    assert!(Authenticator::from_scram_users(&BTreeMap::new())
        .expect("empty is valid")
        .is_empty());
    let salt = b64_decode(RFC_SALT).expect("base64");
    let good = verifier_string("pencil", &salt, 4096);
    let users = BTreeMap::from([("user".to_owned(), good.clone())]);
    let auth = Authenticator::from_scram_users(&users).expect("verifier accepted");
    let (_, last) = exchange(
        auth.lookup(SCRAM_SHA_256).expect("registered"),
        "user",
        "pencil",
    );
    assert!(matches!(last, AuthStep::Success { .. }), "{last:?}");

    let stored_and_server = good.rsplit_once('$').expect("two $").1;
    let bad_values = [
        "SCRAM-SHA-256$".to_owned(),
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==".to_owned(),
        format!("SCRAM-SHA-256$100:{RFC_SALT}${stored_and_server}"),
        format!("SCRAM-SHA-256$x:{RFC_SALT}${stored_and_server}"),
        format!("SCRAM-SHA-256$4096:!!${stored_and_server}"),
        format!("SCRAM-SHA-256$4096::{stored_and_server}"),
        format!("SCRAM-SHA-256$4096:{RFC_SALT}$QUJD:QUJD"),
        String::new(),
    ];
    for value in bad_values {
        let users = BTreeMap::from([("mallory".to_owned(), value.clone())]);
        let error = Authenticator::from_scram_users(&users).expect_err(&value);
        let shown = error.to_string();
        assert!(shown.contains("\"mallory\""), "{shown}");
        assert!(value.len() < 20 || !shown.contains(&value), "{shown}");
    }
    for name in ["", "nul\0", &"x".repeat(257)] {
        let users = BTreeMap::from([(name.to_owned(), "pw".to_owned())]);
        assert!(Authenticator::from_scram_users(&users).is_err(), "{name:?}");
    }
}

#[test]
fn registry_replaces_by_name() {
    let mut auth = Authenticator::new();
    assert!(auth.is_empty());
    let users = BTreeMap::from([("u".to_owned(), verifier_string("p", b"salt", 4096))]);
    let method = Arc::new(ScramSha256::from_users(&users).expect("valid"));
    assert!(auth.register(method.clone()).is_none());
    assert!(auth.register(method).is_some());
    assert_eq!(auth.method_names().collect::<Vec<_>>(), [SCRAM_SHA_256]);
    assert_eq!(format!("{auth:?}"), "{\"SCRAM-SHA-256\"}");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(first in proptest::collection::vec(any::<u8>(), 0..300),
                                next in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut conversation, _) = server().start(&first);
        let _ = conversation.step(&next);
        let _ = conversation.step(&next);
        let mut client = ScramClient::with_nonce("user", "pencil", "abc");
        let _ = client.handle_server_first(&first);
        let _ = client.verify_server_final(&next);
    }

    #[test]
    fn near_valid_messages_never_panic(
        first in "(n|y|p=[a-z]{0,4}|)(,(a=[a-z=23CD]{0,4})?)?(,m=x)?(,n=[a-z=23CD]{0,6})?(,r=[!-~]{0,6})?(,[a-z]=[a-z]{0,3}){0,2}",
        last in "(c=[a-zA-Z0-9+/=]{0,8})?(,r=[!-~]{0,8})?(,[a-z]=[a-zA-Z0-9+/=]{0,8}){0,3}",
    ) {
        let (mut conversation, _) = server().start(first.as_bytes());
        let _ = conversation.step(last.as_bytes());
        let mut client = ScramClient::with_nonce("user", "pencil", "abc");
        let _ = client.handle_server_first(last.as_bytes());
    }
}
