//! The serial console: `virDomainOpenConsole` on a non-blocking stream whose
//! readiness libvirt's event loop reports through a stream callback.
//!
//! The callback runs on the event-loop thread (`pool.rs` runs it). It never
//! blocks and never reads: it switches the stream's events off (libvirt
//! would otherwise fire again and again while unread data waits) and tells
//! the console's pump thread through `wake`; the pump reads until the stream
//! would block and then asks for the next readiness ([`ConsoleStream::watch`]).

use std::os::raw::{c_char, c_int, c_void};

use virt::{connect::Connect, domain::Domain, sys};

use super::{cstring, last_error};
use crate::error::Error;

/// What the stream callback reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent {
    /// Data (or the end of the stream) can be read.
    Readable,
    /// The stream broke or hung up; a read tells how.
    Closed,
}

/// What one non-blocking read got.
#[derive(Debug)]
pub enum Recv {
    /// This many bytes, at the start of the buffer.
    Data(usize),
    /// Nothing yet.
    WouldBlock,
    /// The console closed (the guest stopped, or its end hung up).
    End,
}

/// The function the stream callback calls; boxed twice so that the
/// `opaque` pointer libvirt keeps is a thin pointer.
type Wake = Box<dyn Fn(StreamEvent) + Send + Sync>;

/// An open console stream. Dropping it deregisters the callback and aborts
/// the stream unless [`finish`](Self::finish) ended it.
pub struct ConsoleStream {
    ptr: sys::virStreamPtr,
    watching: bool,
}

// SAFETY: libvirt's stream objects are thread-safe (every public stream
// call locks the object); the pointer is owned by this value alone.
unsafe impl Send for ConsoleStream {}

const READABLE: c_int = sys::VIR_STREAM_EVENT_READABLE as c_int;
const CLOSED: c_int = (sys::VIR_STREAM_EVENT_ERROR | sys::VIR_STREAM_EVENT_HANGUP) as c_int;

unsafe extern "C" fn on_event(st: sys::virStreamPtr, events: c_int, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Box<Wake>` leaked in `open`; libvirt frees it
    // (through `free_wake`) only after the last callback returned. Turning
    // events off on the stream libvirt handed us is a plain call on it.
    unsafe {
        sys::virStreamEventUpdateCallback(st, 0);
        let wake = &*(opaque as *const Wake);
        if events & CLOSED != 0 {
            wake(StreamEvent::Closed);
        } else {
            wake(StreamEvent::Readable);
        }
    }
}

unsafe extern "C" fn free_wake(opaque: *mut c_void) {
    // SAFETY: libvirt calls this once, when the callback is removed, with
    // the pointer `open` leaked.
    drop(unsafe { Box::from_raw(opaque as *mut Wake) });
}

impl ConsoleStream {
    /// Opens the console `device` (libvirt's alias, e.g. `serial0`; `None`:
    /// the first console) of `dom`; `force` takes it over from another
    /// opener, whose stream then fails. `wake` is called, on libvirt's event
    /// loop, whenever the stream becomes readable or closes.
    pub fn open(
        conn: &Connect,
        dom: &Domain,
        device: Option<&str>,
        force: bool,
        wake: impl Fn(StreamEvent) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let device = device.map(|d| cstring("device", d)).transpose()?;
        // SAFETY: see the module doc of `libvirt_sys`.
        let ptr = unsafe { sys::virStreamNew(conn.as_ptr(), sys::VIR_STREAM_NONBLOCK) };
        if ptr.is_null() {
            return Err(last_error());
        }
        let mut stream = ConsoleStream {
            ptr,
            watching: false,
        };
        let flags = if force {
            sys::VIR_DOMAIN_CONSOLE_FORCE
        } else {
            0
        } | sys::VIR_DOMAIN_CONSOLE_SAFE;
        let name = device
            .as_ref()
            .map_or(std::ptr::null(), |d| d.as_ptr() as *const c_char);
        // SAFETY: `dom` and the stream are live, `name` outlives the call.
        let rc = unsafe { sys::virDomainOpenConsole(dom.as_ptr(), name, stream.ptr, flags) };
        if rc < 0 {
            return Err(last_error());
        }
        let opaque = Box::into_raw(Box::new(Box::new(wake) as Wake)) as *mut c_void;
        // SAFETY: `opaque` is handed to libvirt, which gives it back to
        // `on_event` and frees it through `free_wake`.
        let rc = unsafe {
            sys::virStreamEventAddCallback(
                stream.ptr,
                READABLE | CLOSED,
                Some(on_event),
                opaque,
                Some(free_wake),
            )
        };
        if rc < 0 {
            let e = last_error();
            // SAFETY: libvirt did not take `opaque`.
            drop(unsafe { Box::from_raw(opaque as *mut Wake) });
            return Err(e);
        }
        stream.watching = true;
        Ok(stream)
    }

    /// One non-blocking read into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Recv, Error> {
        // SAFETY: `buf` is ours for the call and its length is passed.
        let n = unsafe { sys::virStreamRecv(self.ptr, buf.as_mut_ptr() as *mut c_char, buf.len()) };
        match n {
            0 => Ok(Recv::End),
            -2 => Ok(Recv::WouldBlock),
            n if n < 0 => Err(last_error()),
            n => Ok(Recv::Data(n as usize)),
        }
    }

    /// One non-blocking write of `data`: how much libvirt took (0: it would
    /// block).
    pub fn send(&self, data: &[u8]) -> Result<usize, Error> {
        // SAFETY: `data` lives for the call; libvirt copies what it takes.
        let n = unsafe { sys::virStreamSend(self.ptr, data.as_ptr() as *const c_char, data.len()) };
        match n {
            -2 => Ok(0),
            n if n < 0 => Err(last_error()),
            n => Ok(n as usize),
        }
    }

    /// Asks for the next readiness report (the callback switched events off).
    pub fn watch(&self) -> Result<(), Error> {
        // SAFETY: a plain call on the live stream.
        if unsafe { sys::virStreamEventUpdateCallback(self.ptr, READABLE | CLOSED) } < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Ends the stream cleanly (the caller closed its side).
    pub fn finish(mut self) -> Result<(), Error> {
        self.unwatch();
        // SAFETY: a plain call on the live stream; `Drop` then only frees it.
        let rc = unsafe { sys::virStreamFinish(self.ptr) };
        let result = if rc < 0 { Err(last_error()) } else { Ok(()) };
        // SAFETY: as above; our reference is released exactly once, here.
        unsafe { sys::virStreamFree(self.ptr) };
        std::mem::forget(self);
        result
    }

    fn unwatch(&mut self) {
        if self.watching {
            self.watching = false;
            // SAFETY: a plain call on the live stream; libvirt frees the
            // callback's `opaque` through `free_wake`.
            unsafe { sys::virStreamEventRemoveCallback(self.ptr) };
        }
    }
}

impl Drop for ConsoleStream {
    fn drop(&mut self) {
        self.unwatch();
        // SAFETY: the stream is live and ours; abort fails harmlessly on a
        // stream libvirt already ended, and our reference is released once.
        unsafe {
            sys::virStreamAbort(self.ptr);
            sys::virStreamFree(self.ptr);
        }
    }
}
