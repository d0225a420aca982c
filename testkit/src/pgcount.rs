//! Counts the statements a server sends to Postgres: a proxy between the
//! server and the database that reads the client side of the wire protocol
//! and counts each Execute (extended protocol) and Query (simple protocol)
//! message. A test points DATABASE_URL at [`StatementCounter::url`], and
//! compares [`StatementCounter::count`] before and after a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Startup-phase request codes that are followed by another startup packet.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

pub struct StatementCounter {
    url: String,
    count: Arc<AtomicU64>,
}

impl StatementCounter {
    /// A proxy to the database at `database_url` (`postgres://user@host:port/db`).
    pub async fn start(database_url: &str) -> StatementCounter {
        let rest = database_url
            .strip_prefix("postgres://")
            .expect("a postgres:// URL");
        let (authority, db) = rest.split_once('/').expect("a database name");
        let (user, upstream) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let count = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                // Small protocol messages must not wait for each other's ACKs.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                tokio::spawn(pump(client, server, Arc::clone(&counted)));
            }
        });
        // TLS would hide the messages.
        let db = db.split('?').next().unwrap_or(db);
        StatementCounter {
            url: format!("postgres://{user}{addr}/{db}?sslmode=disable"),
            count,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Statements sent so far, by every connection.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

async fn pump(client: TcpStream, server: TcpStream, count: Arc<AtomicU64>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    });
    let _ = requests(&mut client_rx, &mut server_tx, &count).await;
    let _ = server_tx.shutdown().await;
    let _ = answers.await;
}

/// Forwards the client's messages, counting Execute and Query.
async fn requests(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    count: &AtomicU64,
) -> std::io::Result<()> {
    // Startup packets have no type byte: a length, then a code.
    loop {
        let len = from.read_u32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        from.read_exact(&mut body).await?;
        to.write_all(&len.to_be_bytes()).await?;
        to.write_all(&body).await?;
        let code = body
            .get(..4)
            .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if code != SSL_REQUEST && code != GSSENC_REQUEST {
            break;
        }
    }
    loop {
        let kind = from.read_u8().await?;
        let len = from.read_u32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        from.read_exact(&mut body).await?;
        if kind == b'E' || kind == b'Q' {
            count.fetch_add(1, Ordering::SeqCst);
        }
        let mut message = Vec::with_capacity(body.len() + 5);
        message.push(kind);
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(&body);
        to.write_all(&message).await?;
    }
}
