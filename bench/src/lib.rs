//! What the benchmark binaries share: a minimal HTTP/1.1 remote_write client over one
//! kept-alive connection, so the load generators measure the receivers rather than a
//! client library, and every generator sends the same bytes the same way.

#![forbid(unsafe_code)]

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// POSTs a snappy-compressed remote_write `body` to `path` on the connection and returns
/// the status code and the response body.
pub async fn post_remote_write(
    stream: &mut BufReader<tokio::net::TcpStream>,
    host: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.get_mut().write_all(head.as_bytes()).await?;
    stream.get_mut().write_all(body).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut len = 0usize;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).await?;
    Ok((code, String::from_utf8_lossy(&text).into_owned()))
}
