//! The audit line: every call that changes something is logged once, with
//! the caller's name, the method, the host and the target.
//!
//! The auth layer opens a task-local record around each call that needs
//! more than `reader`; the one resolver (`services::resolve`) and the host
//! lookup fill in the host and the target as they resolve them, and the
//! layer writes the line when the call is answered (for a stream: when it
//! is opened), under the tracing target `audit`.

use std::cell::RefCell;

tokio::task_local! {
    static RECORD: RefCell<Record>;
}

/// What the call acted on, as far as the resolver saw it.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// The configured host.
    pub host: Option<String>,
    /// The object, as the resolver named it (`Name("vm1")`, ...).
    pub target: Option<String>,
}

/// Runs `fut` with a fresh record; returns its output and the record.
pub async fn scope<F: std::future::Future>(fut: F) -> (F::Output, Record) {
    RECORD
        .scope(RefCell::new(Record::default()), async move {
            let out = fut.await;
            let record = RECORD.with(|r| r.borrow().clone());
            (out, record)
        })
        .await
}

/// Notes the host of the call being audited (if one is).
pub fn note_host(host: &str) {
    let _ = RECORD.try_with(|r| {
        let mut r = r.borrow_mut();
        if r.host.is_none() {
            r.host = Some(host.to_owned());
        }
    });
}

/// Notes the host and target of the call being audited (if one is): the
/// resolved reference (`Name("vm1")`), or the name of what a define or
/// create made.
pub fn note_target(host: &str, target: &dyn std::fmt::Debug) {
    let _ = RECORD.try_with(|r| {
        let mut r = r.borrow_mut();
        r.host = Some(host.to_owned());
        r.target = Some(format!("{target:?}"));
    });
}
