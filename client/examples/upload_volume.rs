//! Uploads a local file into a new raw volume with a progress line, then
//! prints the SHA-256 both sides agreed on.
//!
//! ```sh
//! cargo run -p libvirt-grpc-client --example upload_volume -- \
//!     http://127.0.0.1:50051 default disk.img ./disk.img
//! ```

use std::io::Write;

use libvirt_grpc_client::{v1, Client, Progress, UploadOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, pool, volume, file] = args.as_slice() else {
        return Err("usage: upload_volume URL POOL VOLUME FILE".into());
    };
    let client = Client::connect(url.as_str()).await?;
    let options = UploadOptions {
        create: Some(v1::StorageVolumeSpec {
            format: v1::StorageVolumeFormat::Raw as i32,
            // 0: the file's size.
            ..Default::default()
        }),
        verify_before_commit: true,
        ..Default::default()
    };
    let up = client
        .pool(pool.as_str())
        .volume(volume.as_str())
        .upload(file, options, |p: Progress| {
            let total = p.total.unwrap_or(0).max(1);
            eprint!("\r{:>3}% {} bytes", p.done * 100 / total, p.done);
            let _ = std::io::stderr().flush();
        })
        .await?;
    eprintln!();
    println!("{} bytes, sha256 {}", up.transfer.bytes, up.transfer.sha256);
    Ok(())
}
