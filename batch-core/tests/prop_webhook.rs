//! Property tests for webhook verification: what is signed verifies, any
//! change to what is signed does not, and no input panics.

use batch_core::UnixMillis;
use batch_core::http::{HeaderMap, HeaderValue};
use batch_core::webhook::{Verifier, WebhookError, WebhookEvent, WebhookSecret};
use proptest::prelude::*;

fn headers(id: &str, ts: &str, sig: &str) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_str(id).ok()?);
    h.insert("webhook-timestamp", HeaderValue::from_str(ts).ok()?);
    h.insert("webhook-signature", HeaderValue::from_str(sig).ok()?);
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A message signed with the secret verifies at any `now` within the
    /// tolerance, whatever the key, id, time and body.
    #[test]
    fn signed_messages_verify(
        key in prop::collection::vec(any::<u8>(), 1..80),
        id in "[a-zA-Z0-9_]{1,40}",
        ts in 0i64..4_000_000_000,
        skew in -300i64..=300,
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let secret = WebhookSecret::from_bytes(key).unwrap_or_else(|_| unreachable!());
        let sig = secret.sign(&id, ts, &body);
        let h = headers(&id, &ts.to_string(), &sig).unwrap_or_default();
        let now = UnixMillis::from_secs(ts + skew);
        prop_assert_eq!(Verifier::new(secret).verify(&h, &body, now), Ok(()));
    }

    /// Flipping any one bit of the body, or using another key, is caught.
    #[test]
    fn any_change_is_refused(
        key in prop::collection::vec(any::<u8>(), 1..40),
        other in prop::collection::vec(any::<u8>(), 1..40),
        body in prop::collection::vec(any::<u8>(), 1..200),
        bit in any::<prop::sample::Index>(),
    ) {
        let ts = 1_700_000_000;
        let secret = WebhookSecret::from_bytes(key.clone()).unwrap_or_else(|_| unreachable!());
        let sig = secret.sign("msg_1", ts, &body);
        let h = headers("msg_1", &ts.to_string(), &sig).unwrap_or_default();
        let now = UnixMillis::from_secs(ts);
        let mut flipped = body.clone();
        let i = bit.index(body.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(
            Verifier::new(secret).verify(&h, &flipped, now),
            Err(WebhookError::Mismatch)
        );
        if other != key {
            let wrong = WebhookSecret::from_bytes(other).unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(
                Verifier::new(wrong).verify(&h, &body, now),
                Err(WebhookError::Mismatch)
            );
        }
    }

    /// Arbitrary headers and bodies give `Ok` or a typed error, never a panic.
    #[test]
    fn arbitrary_input_never_panics(
        id in "\\PC{0,30}",
        ts in "\\PC{0,20}",
        sig in "\\PC{0,120}",
        body in prop::collection::vec(any::<u8>(), 0..300),
        now in any::<u64>(),
    ) {
        let secret = WebhookSecret::parse("whsec_c2VjcmV0").unwrap_or_else(|_| unreachable!());
        if let Some(h) = headers(&id, &ts, &sig) {
            let _ = Verifier::new(secret).unwrap(&h, &body, UnixMillis(now));
        }
        let _ = WebhookEvent::parse(&body);
    }
}
