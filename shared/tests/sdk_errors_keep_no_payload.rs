//! A 200 answer whose body does not parse is not an `SdkError::ResponseError` but a `ServiceError`
//! holding `Unhandled { source: DeserializeError }` (no error code), whose text quotes bytes of the
//! payload. Before the fix `sdk_source` kept it and this printed `... got SECRET as the low word`.
//! moto always answers well-formed JSON, so a bare TCP listener plays Secrets Manager here.
#![allow(clippy::unwrap_used)]

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn fake_secrets_manager(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let mut read = 0;
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            break;
                        }
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn an_unreadable_200_keeps_no_source_quoting_the_secret_value() {
    // The secret's value holds a high surrogate followed by the password: the SDK's JSON reader quotes
    // the six bytes after it.
    let body = r#"{"ARN":"arn:x","Name":"n","SecretString":"{\"smartabase_password\":\"\uD800SECRET-PW\"}"}"#;
    let endpoint = fake_secrets_manager(body).await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("k", "s", None, None, "probe"))
        .load()
        .await;

    let error = shared::aws::read_secrets(&sdk, "connector")
        .await
        .err()
        .unwrap();
    let chain = shared::error::with_causes(&error);
    let debug = format!("{error:?}");

    assert!(
        !chain.contains("SECRET") && !debug.contains("SECRET"),
        "{chain} / {debug}"
    );
}
