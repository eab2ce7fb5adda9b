//! Lists the domains of a libvirt-grpc server, then prints every event as
//! it arrives (resuming by itself after a dropped connection).
//!
//! ```sh
//! cargo run -p libvirt-grpc-client --example list_and_watch -- http://127.0.0.1:50051
//! ```

use std::time::Duration;

use libvirt_grpc_client::{v1, Client};
use tokio_stream::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let client = Client::builder(url)
        .timeout(Duration::from_secs(10))
        .read_retries(3)
        .connect()
        .await?;
    for d in client.list_domains().await? {
        println!("{:<24} {:?}", d.name, d.state());
    }
    let mut events = client.watch(v1::WatchEventsRequest::default());
    while let Some(item) = events.next().await {
        match item?.item {
            Some(v1::watch_events_response::Item::Event(e)) => {
                println!("#{} {} {} {:?}", e.sequence, e.host, e.name, e.kind())
            }
            Some(v1::watch_events_response::Item::EventsLost(l)) => {
                println!("lost {}..{}: list again", l.from_sequence, l.to_sequence)
            }
            _ => {}
        }
    }
    Ok(())
}
