//! Streamed transfers between local files and volumes or guest files, on
//! the generated stubs: 1 MiB chunks read by a blocking thread, the
//! SHA-256 computed on the way and compared with the server's, and a
//! progress bar on stderr when it is a terminal.

use std::{
    io::{Read, Write},
    path::Path,
};

use indicatif::ProgressBar;
use libvirt_grpc_client::v1;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{output, Ctx, Failure};

const CHUNK: usize = 1 << 20;

/// The SHA-256 (hex) of what the reader thread read, or why it failed.
type DigestRx = tokio::sync::oneshot::Receiver<Result<String, String>>;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `file` in chunks on a thread, each chunk wrapped by `wrap` and
/// counted on `bar`; the digest of everything read comes on the oneshot.
fn read_chunks<T: Send + 'static>(
    file: &Path,
    first: T,
    wrap: fn(Vec<u8>) -> T,
    bar: ProgressBar,
) -> Result<(ReceiverStream<T>, DigestRx), Failure> {
    let mut f = std::fs::File::open(file).map_err(|e| Failure::file("open", file, e))?;
    let (tx, rx) = mpsc::channel::<T>(4);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let shown = file.display().to_string();
    std::thread::Builder::new()
        .name("upload-reader".into())
        .spawn(move || {
            let mut hash = Sha256::new();
            if tx.blocking_send(first).is_err() {
                return;
            }
            let result = loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match f.read(&mut buf) {
                    Ok(0) => break Ok(hex(&hash.finalize())),
                    Ok(n) => n,
                    Err(e) => break Err(format!("Cannot read {shown}: {e}")),
                };
                buf.truncate(n);
                hash.update(&buf);
                if tx.blocking_send(wrap(buf)).is_err() {
                    break Err("the server stopped reading".to_owned());
                }
                bar.inc(n as u64);
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| Failure::Local(format!("Cannot start the reader thread: {e}")))?;
    Ok((ReceiverStream::new(rx), done_rx))
}

/// The local digest, once the reader thread finished.
async fn local_digest(rx: DigestRx) -> Result<String, Failure> {
    match rx.await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(Failure::Local(e)),
        Err(_) => Err(Failure::Local("The reader thread ended early".into())),
    }
}

fn compare(local: &str, server: &str, what: &str) -> Result<(), Failure> {
    if !server.is_empty() && !local.eq_ignore_ascii_case(server) {
        return Err(Failure::Local(format!(
            "{what}: the SHA-256 differs (local {local}, server {server})"
        )));
    }
    Ok(())
}

/// Uploads `file` into the volume `pool`/`name` (created first as large
/// as the file with `create`).
pub(crate) async fn upload(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    file: &Path,
    create: bool,
    format: Option<v1::StorageVolumeFormat>,
    offset: u64,
) -> Result<v1::UploadStorageVolumeResponse, Failure> {
    use v1::upload_storage_volume_request::Item;
    let len = std::fs::metadata(file)
        .map_err(|e| Failure::file("read", file, e))?
        .len();
    let target = v1::UploadStorageVolumeRequest {
        item: Some(Item::Target(v1::UploadTarget {
            volume: ctx.vol_ref(pool, name),
            offset_bytes: offset,
            length_bytes: len,
            sha256: String::new(),
            create: create.then(|| v1::StorageVolumeSpec {
                capacity_bytes: len.max(1) + offset,
                format: format.map(|f| f as i32).unwrap_or(0),
                ..Default::default()
            }),
        })),
    };
    let bar = output::progress(len, &format!("uploading {name}"));
    let (stream, digest) = read_chunks(
        file,
        target,
        |c| v1::UploadStorageVolumeRequest {
            item: Some(Item::Chunk(c)),
        },
        bar.clone(),
    )?;
    let r = ctx
        .client
        .storage()
        .upload_storage_volume(ctx.long_req(stream))
        .await;
    bar.finish_and_clear();
    let r = r?.into_inner();
    compare(&local_digest(digest).await?, &r.sha256, name)?;
    Ok(r)
}

/// Downloads the volume `pool`/`name` into `file`; answers the bytes
/// written and their SHA-256.
pub(crate) async fn download(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    file: &Path,
    offset: u64,
    length: u64,
) -> Result<(u64, String), Failure> {
    use v1::download_storage_volume_response::Item;
    let mut stream = ctx
        .client
        .storage()
        .download_storage_volume(ctx.long_req(v1::DownloadStorageVolumeRequest {
            volume: ctx.vol_ref(pool, name),
            offset_bytes: offset,
            length_bytes: length,
        }))
        .await?
        .into_inner();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(file).map_err(|e| Failure::file("create", file, e))?,
    );
    let mut hash = Sha256::new();
    let mut written = 0u64;
    let mut bar = ProgressBar::hidden();
    let mut finished = None;
    while let Some(msg) = stream.message().await? {
        match msg.item {
            Some(Item::Started(s)) => {
                bar = output::progress(s.expected_bytes, &format!("downloading {name}"));
            }
            Some(Item::Chunk(c)) => {
                out.write_all(&c.data)
                    .map_err(|e| Failure::file("write", file, e))?;
                hash.update(&c.data);
                written += c.data.len() as u64;
                bar.inc(c.data.len() as u64);
            }
            Some(Item::Finished(f)) => finished = Some(f),
            None => {}
        }
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| Failure::file("write", file, e))?;
    let f = finished.ok_or_else(|| Failure::missing("download's finished message"))?;
    let local = hex(&hash.finalize());
    if f.total_bytes != written {
        return Err(Failure::Local(format!(
            "{name}: {written} bytes received, the server sent {}",
            f.total_bytes
        )));
    }
    compare(&local, &f.sha256, name)?;
    Ok((written, local))
}

/// Writes the local `file` to `path` in the guest; answers the bytes
/// written.
pub(crate) async fn guest_put(
    ctx: &Ctx,
    domain: &str,
    file: &Path,
    path: &str,
    append: bool,
) -> Result<u64, Failure> {
    use v1::write_guest_file_request::Item;
    let len = std::fs::metadata(file)
        .map_err(|e| Failure::file("read", file, e))?
        .len();
    let target = v1::WriteGuestFileRequest {
        item: Some(Item::Target(v1::WriteGuestFileTarget {
            domain: ctx.dref(domain),
            path: path.to_owned(),
            append,
        })),
    };
    let bar = output::progress(len, &format!("writing {path}"));
    let (stream, digest) = read_chunks(
        file,
        target,
        |c| v1::WriteGuestFileRequest {
            item: Some(Item::Data(c)),
        },
        bar.clone(),
    )?;
    let r = ctx
        .client
        .agent()
        .write_guest_file(ctx.long_req(stream))
        .await;
    bar.finish_and_clear();
    let r = r?.into_inner();
    local_digest(digest).await?;
    if r.written_bytes != len {
        return Err(Failure::Local(format!(
            "{path}: {} of {len} bytes written",
            r.written_bytes
        )));
    }
    Ok(r.written_bytes)
}

/// Reads `path` in the guest into the local `file`; answers the bytes
/// and their SHA-256.
pub(crate) async fn guest_get(
    ctx: &Ctx,
    domain: &str,
    path: &str,
    file: &Path,
) -> Result<(u64, String), Failure> {
    use v1::read_guest_file_response::Item;
    let mut stream = ctx
        .client
        .agent()
        .read_guest_file(ctx.long_req(v1::ReadGuestFileRequest {
            domain: ctx.dref(domain),
            path: path.to_owned(),
            offset_bytes: 0,
            length_bytes: 0,
        }))
        .await?
        .into_inner();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(file).map_err(|e| Failure::file("create", file, e))?,
    );
    let mut hash = Sha256::new();
    let mut written = 0u64;
    let mut expected = None;
    let mut bar = ProgressBar::hidden();
    while let Some(msg) = stream.message().await? {
        match msg.item {
            Some(Item::Started(s)) => {
                expected = Some(s.expected_bytes);
                bar = output::progress(s.expected_bytes, &format!("reading {path}"));
            }
            Some(Item::Data(d)) => {
                out.write_all(&d)
                    .map_err(|e| Failure::file("write", file, e))?;
                hash.update(&d);
                written += d.len() as u64;
                bar.inc(d.len() as u64);
            }
            None => {}
        }
    }
    bar.finish_and_clear();
    out.flush().map_err(|e| Failure::file("write", file, e))?;
    if let Some(e) = expected.filter(|e| *e != written) {
        return Err(Failure::Local(format!(
            "{path}: {written} bytes received, {e} expected"
        )));
    }
    Ok((written, hex(&hash.finalize())))
}
