//! The Azure mode's Microsoft Entra ID tokens: issued by the emulator,
//! accepted as `Authorization: Bearer` until they expire on its virtual
//! clock, then refused with `401` in Azure's gateway shape; the `api-key`
//! header still works beside them.

mod common;

use std::time::Duration;

use batch_emulator::{Emulator, ProviderMode};
use common::{Api, KEY};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_tokens_are_accepted_until_they_expire() {
    let emu = Emulator::builder()
        .provider(ProviderMode::Azure)
        .api_key(KEY)
        .entra_tokens(Duration::from_secs(600))
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let list = |auth: (&'static str, String)| {
        api.http
            .get(api.url("/batches"))
            .header(auth.0, auth.1)
            .send()
    };

    // Issued over HTTP, in the shape of `az account get-access-token`.
    let origin = emu.base_url().replace("/openai/v1", "");
    let before = emu.now();
    let issued: Value = api
        .http
        .post(format!("{origin}/__emulator/entra-token"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = issued["accessToken"].as_str().expect("a token").to_owned();
    let from_handle = emu.entra_issuer().issue();
    let after = emu.now();
    let ten_minutes_on = before + 600..=after + 600;
    let expires_on = issued["expires_on"].as_i64().expect("expires_on");
    assert!(ten_minutes_on.contains(&expires_on), "{issued}");
    assert!(ten_minutes_on.contains(&from_handle.expires_on));

    for t in [&token, &from_handle.token] {
        let resp = list(("authorization", format!("Bearer {t}")))
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200, "a fresh token is accepted");
    }
    let resp = list(("api-key", KEY.to_owned())).await.expect("send");
    assert_eq!(resp.status().as_u16(), 200, "the key still works");

    // A token the emulator did not issue, or one tampered with.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    for t in ["eyJ-not-ours", forged.as_str()] {
        let resp = list(("authorization", format!("Bearer {t}")))
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 401, "{t}");
    }

    // Past its expiry: refused, in Azure's shape.
    emu.advance(Duration::from_secs(601)).await;
    let resp = list(("authorization", format!("Bearer {token}")))
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["statusCode"], 401);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("or have expired")),
        "{body}"
    );
    let counters = emu.counters();
    assert_eq!(counters.entra_tokens_issued, 2);
    assert_eq!(counters.entra_tokens_expired, 1, "{counters:?}");
    // A new token works again.
    let fresh = emu.entra_issuer().issue().token;
    let resp = list(("authorization", format!("Bearer {fresh}")))
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
}
