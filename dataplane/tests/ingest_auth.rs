//! Authenticated ingest (issue 11, point 7): with `--ingest-token-file`, a
//! batch without the token or with a wrong one is refused with a 401
//! problem document and nothing of it is applied; the right token is
//! accepted; a rotated Secret (a swapped symlink) takes effect without a
//! restart. Through `local` on the embedded store, whose reader shows what
//! ingest applied.

mod common;

use cachebridge_dataplane::app::{self, Running};
use common::{client, config, eventually, tick};
use reqwest::StatusCode;
use std::path::Path;

async fn local(token_file: &Path) -> Running {
    let mut config = config(None, &[]);
    config.writer.ingest_token_file = Some(token_file.to_owned());
    app::start_local(&config).await.unwrap()
}

async fn post(url: &str, token: Option<&str>, body: String) -> reqwest::Response {
    let mut request = client().post(format!("{url}/ingest")).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Points `link` at a new file holding `token`, the way the kubelet updates
/// a Secret volume: write elsewhere, then rename a symlink over the old one.
fn rotate(dir: &Path, link: &Path, name: &str, token: &str) {
    let target = dir.join(name);
    std::fs::write(&target, format!("{token}\n")).unwrap();
    let tmp = dir.join("next");
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test]
async fn ingest_needs_the_token_and_follows_its_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("token");
    rotate(dir.path(), &link, "v1", "first-token");
    let running = local(&link).await;
    let url = format!("http://{}", running.addr.unwrap());

    for (token, detail) in [
        (None, "needs"),
        (Some("wrong-token"), "not the ingest token"),
    ] {
        let refused = post(&url, token, tick("AAA", 1.0, 1)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(problem["status"], 401);
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
    }

    let accepted = post(&url, Some("first-token"), tick("BBB", 2.0, 1)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let bbb = format!("{url}/api/v1/market/tickers/BBB");
    eventually("BBB published", || async {
        let answer = client().get(&bbb).send().await.ok()?;
        (answer.status() == StatusCode::OK).then_some(())
    })
    .await;
    // Published after BBB, so had AAA been applied it would show by now.
    let aaa = client()
        .get(format!("{url}/api/v1/market/tickers/AAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        aaa.status(),
        StatusCode::NOT_FOUND,
        "a refused batch was applied"
    );

    rotate(dir.path(), &link, "v2", "second-token");
    let old = post(&url, Some("first-token"), tick("CCC", 3.0, 1)).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = post(&url, Some("second-token"), tick("CCC", 3.0, 1)).await;
    assert_eq!(new.status(), StatusCode::ACCEPTED);
    running.stop().await;
}

#[tokio::test]
async fn a_missing_token_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(None, &[]);
    config.writer.ingest_token_file = Some(dir.path().join("absent"));
    let err = app::start_local(&config).await.err().unwrap().to_string();
    assert!(err.contains("ingest token file"), "{err}");
}
