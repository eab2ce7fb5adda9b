//! The server's own libvirt event implementation (`virEventRegisterImpl`):
//! one `epoll` set, one `timerfd` per libvirt timeout, run on one thread.
//!
//! # Why not libvirt's default (GLib) loop
//!
//! Around every call on a remote connection libvirt's RPC client takes the
//! socket's watch away from the event loop (`virEventUpdateHandle(w, 0)`),
//! polls the socket itself on the calling thread, gives the watch back
//! (`READABLE`) and re-arms the connection's keepalive timeout. The GLib
//! loop turns each of those changes into a new `GSource` and a wake-up of
//! the loop thread, which then rebuilds its poll set: about five context
//! switches per call (README, "where a GetDomain's time goes"). With
//! `epoll` and `timerfd` the kernel applies those changes for us: an
//! `epoll_ctl` or `timerfd_settime` from any thread takes effect on the
//! sleeping loop at once, without waking it. The loop thread wakes only
//! when a watched socket is readable (an event, a reply nobody is polling
//! for), a timeout expires, or a watch or timeout was removed.
//!
//! # libvirt's rules, and how they are kept
//!
//! * Callbacks run on the loop thread, never with our lock held (libvirt
//!   adds, updates and removes watches from inside callbacks).
//! * A removed watch or timeout never fires again: it is taken out of the
//!   `epoll` set at once, and each callback is checked for removal under
//!   the lock just before it is made.
//! * Its free callback (`ff`) runs later, on the loop thread, after the
//!   iteration's callbacks and without the lock: libvirt may remove from
//!   inside a callback that still uses `opaque`, or with its own locks held.
//!   A removal from another thread wakes the loop (an `eventfd`) so the
//!   free is not delayed until the next event.
//! * A watch with no events is out of the `epoll` set, so an error or a
//!   hang-up on a socket libvirt is polling itself cannot spin the loop.
//! * A watch is taken out of the `epoll` set when it is removed, before
//!   libvirt closes its fd, so a number libvirt closes and reuses never
//!   aliases. A second live watch on an fd that already has one (which
//!   `epoll` cannot hold twice) watches a `dup` of it, closed with it.
//! * Timeouts repeat every `ms` (0: on every iteration) until updated to -1
//!   or removed, and an update restarts the period, as in libvirt's own
//!   loops.
//!
//! # Safety argument
//!
//! * `cb`, `opaque` and `ff` are libvirt's; we call `cb` with exactly the
//!   arguments libvirt documents, only while the entry is not removed, and
//!   `ff(opaque)` exactly once, after the last possible `cb`.
//! * The fds we close are ours (`dup`, `epoll_create1`, `eventfd`,
//!   `timerfd`), each closed exactly once, when its entry is freed; a
//!   watch's own fd stays libvirt's and is never closed here. `epoll_wait`
//!   writes into a local array of the length it is given.

use std::{
    collections::HashMap,
    os::raw::{c_int, c_void},
    sync::{Mutex, MutexGuard, OnceLock},
};

use virt::sys;

/// Token of the loop's own wake-up `eventfd` in the `epoll` set.
const WAKE: u64 = u64::MAX;
/// Timeout tokens carry this bit; watch tokens are the bare watch id.
const TIMER_BIT: u64 = 1 << 32;
/// Ready fds taken from the kernel per `epoll_wait`.
const BATCH: usize = 64;

struct Watch {
    /// What the `epoll` set holds: libvirt's fd, or our `dup` of it when
    /// another live watch has that fd (`owned`).
    fd: c_int,
    owned: bool,
    /// libvirt's fd, handed back to its callback.
    libvirt_fd: c_int,
    /// libvirt's `VIR_EVENT_HANDLE_*` mask; 0 while libvirt polls itself.
    events: c_int,
    in_epoll: bool,
    removed: bool,
    cb: sys::virEventHandleCallback,
    opaque: *mut c_void,
    ff: sys::virFreeCallback,
}

struct Timer {
    fd: c_int,
    removed: bool,
    cb: sys::virEventTimeoutCallback,
    opaque: *mut c_void,
    ff: sys::virFreeCallback,
}

#[derive(Default)]
struct Entries {
    watches: HashMap<c_int, Watch>,
    timers: HashMap<c_int, Timer>,
    next_watch: c_int,
    next_timer: c_int,
}

// SAFETY: the raw `opaque` pointers are libvirt's; libvirt requires an event
// implementation to hand them back from its loop thread, which is what we
// do. We never dereference them.
unsafe impl Send for Entries {}

struct Loop {
    epoll: c_int,
    wake: c_int,
    entries: Mutex<Entries>,
}

static LOOP: OnceLock<Loop> = OnceLock::new();

fn lock(l: &Loop) -> MutexGuard<'_, Entries> {
    // A panic while holding the lock leaves the maps consistent (every
    // change is one insert or field store), so poisoning carries no meaning.
    l.entries.lock().unwrap_or_else(|p| p.into_inner())
}

fn epoll_events(mask: c_int) -> u32 {
    let mut e = 0;
    if mask & sys::VIR_EVENT_HANDLE_READABLE as c_int != 0 {
        e |= libc::EPOLLIN as u32;
    }
    if mask & sys::VIR_EVENT_HANDLE_WRITABLE as c_int != 0 {
        e |= libc::EPOLLOUT as u32;
    }
    e
}

fn libvirt_events(e: u32) -> c_int {
    let mut m = 0;
    if e & libc::EPOLLIN as u32 != 0 {
        m |= sys::VIR_EVENT_HANDLE_READABLE as c_int;
    }
    if e & libc::EPOLLOUT as u32 != 0 {
        m |= sys::VIR_EVENT_HANDLE_WRITABLE as c_int;
    }
    if e & libc::EPOLLERR as u32 != 0 {
        m |= sys::VIR_EVENT_HANDLE_ERROR as c_int;
    }
    if e & libc::EPOLLHUP as u32 != 0 {
        m |= sys::VIR_EVENT_HANDLE_HANGUP as c_int;
    }
    m
}

fn epoll_ctl(epoll: c_int, op: c_int, fd: c_int, events: u32, token: u64) -> bool {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live local; the fds are ours (module doc).
    unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) == 0 }
}

/// Puts the watch's `epoll` membership in line with its mask.
fn sync_watch(epoll: c_int, id: c_int, w: &mut Watch) {
    let want = epoll_events(w.events);
    let token = id as u64;
    if want == 0 {
        if w.in_epoll && epoll_ctl(epoll, libc::EPOLL_CTL_DEL, w.fd, 0, token) {
            w.in_epoll = false;
        }
    } else if w.in_epoll {
        epoll_ctl(epoll, libc::EPOLL_CTL_MOD, w.fd, want, token);
    } else {
        w.in_epoll = epoll_ctl(epoll, libc::EPOLL_CTL_ADD, w.fd, want, token);
    }
}

/// Arms (`ms >= 0`) or disarms (`ms < 0`) a timerfd: first expiry and
/// period `ms` milliseconds (0: at once and on every iteration).
fn arm(fd: c_int, ms: c_int) {
    let spec = if ms < 0 {
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }
    } else if ms == 0 {
        libc::timespec {
            tv_sec: 0,
            tv_nsec: 1,
        }
    } else {
        libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) as libc::c_long) * 1_000_000,
        }
    };
    let value = libc::itimerspec {
        it_interval: spec,
        it_value: spec,
    };
    // SAFETY: `fd` is our timerfd; `value` is a live local.
    unsafe { libc::timerfd_settime(fd, 0, &value, std::ptr::null_mut()) };
}

fn wake(l: &Loop) {
    let one: u64 = 1;
    // SAFETY: `wake` is our eventfd; we write the 8 bytes of a live local.
    unsafe { libc::write(l.wake, (&one as *const u64).cast(), 8) };
}

fn drain(fd: c_int) {
    let mut buf: u64 = 0;
    // SAFETY: eventfd and timerfd reads are 8 bytes into a live local; both
    // fds are non-blocking, so this never waits.
    unsafe { libc::read(fd, (&mut buf as *mut u64).cast(), 8) };
}

unsafe extern "C" fn add_handle(
    fd: c_int,
    events: c_int,
    cb: sys::virEventHandleCallback,
    opaque: *mut c_void,
    ff: sys::virFreeCallback,
) -> c_int {
    let Some(l) = LOOP.get() else { return -1 };
    let mut e = lock(l);
    let shared = e.watches.values().any(|w| !w.removed && w.libvirt_fd == fd);
    let own = if shared {
        // SAFETY: duplicating a caller's fd has no memory effects.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return -1;
        }
        dup
    } else {
        fd
    };
    e.next_watch = e.next_watch.wrapping_add(1).max(1);
    let id = e.next_watch;
    let mut w = Watch {
        fd: own,
        owned: shared,
        libvirt_fd: fd,
        events,
        in_epoll: false,
        removed: false,
        cb,
        opaque,
        ff,
    };
    sync_watch(l.epoll, id, &mut w);
    if events != 0 && !w.in_epoll {
        if shared {
            // SAFETY: our dup, closed once, here; libvirt keeps ownership
            // of `opaque` on failure.
            unsafe { libc::close(own) };
        }
        return -1;
    }
    e.watches.insert(id, w);
    id
}

unsafe extern "C" fn update_handle(watch: c_int, events: c_int) {
    let Some(l) = LOOP.get() else { return };
    let mut e = lock(l);
    if let Some(w) = e.watches.get_mut(&watch).filter(|w| !w.removed) {
        w.events = events;
        sync_watch(l.epoll, watch, w);
    }
}

unsafe extern "C" fn remove_handle(watch: c_int) -> c_int {
    let Some(l) = LOOP.get() else { return -1 };
    {
        let mut e = lock(l);
        let Some(w) = e.watches.get_mut(&watch).filter(|w| !w.removed) else {
            return -1;
        };
        w.removed = true;
        w.events = 0;
        sync_watch(l.epoll, watch, w);
    }
    wake(l);
    0
}

unsafe extern "C" fn add_timeout(
    ms: c_int,
    cb: sys::virEventTimeoutCallback,
    opaque: *mut c_void,
    ff: sys::virFreeCallback,
) -> c_int {
    let Some(l) = LOOP.get() else { return -1 };
    // SAFETY: creating an fd has no memory effects.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return -1;
    }
    let mut e = lock(l);
    e.next_timer = e.next_timer.wrapping_add(1).max(1);
    let id = e.next_timer;
    if !epoll_ctl(
        l.epoll,
        libc::EPOLL_CTL_ADD,
        fd,
        libc::EPOLLIN as u32,
        TIMER_BIT | id as u64,
    ) {
        // SAFETY: our timerfd, closed once, here.
        unsafe { libc::close(fd) };
        return -1;
    }
    arm(fd, ms);
    e.timers.insert(
        id,
        Timer {
            fd,
            removed: false,
            cb,
            opaque,
            ff,
        },
    );
    id
}

unsafe extern "C" fn update_timeout(timer: c_int, ms: c_int) {
    let Some(l) = LOOP.get() else { return };
    let e = lock(l);
    if let Some(t) = e.timers.get(&timer).filter(|t| !t.removed) {
        arm(t.fd, ms);
    }
}

unsafe extern "C" fn remove_timeout(timer: c_int) -> c_int {
    let Some(l) = LOOP.get() else { return -1 };
    {
        let mut e = lock(l);
        let Some(t) = e.timers.get_mut(&timer).filter(|t| !t.removed) else {
            return -1;
        };
        t.removed = true;
        arm(t.fd, -1);
        epoll_ctl(l.epoll, libc::EPOLL_CTL_DEL, t.fd, 0, 0);
    }
    wake(l);
    0
}

/// What one ready token asks the loop to do, copied out under the lock.
enum Ready {
    Watch(c_int, c_int),
    Timer(c_int),
}

/// One iteration: wait, make the callbacks that are due, then free what
/// was removed.
fn run_once(l: &Loop) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
    // SAFETY: the kernel writes at most `BATCH` entries into the array.
    let n = unsafe { libc::epoll_wait(l.epoll, events.as_mut_ptr(), BATCH as c_int, -1) };
    let ready: Vec<Ready> = events
        .iter()
        .take(n.max(0) as usize)
        .filter_map(|ev| {
            let (token, mask) = (ev.u64, ev.events);
            if token == WAKE {
                drain(l.wake);
                None
            } else if token & TIMER_BIT != 0 {
                Some(Ready::Timer((token & !TIMER_BIT) as c_int))
            } else {
                Some(Ready::Watch(token as c_int, libvirt_events(mask)))
            }
        })
        .collect();
    for r in ready {
        match r {
            Ready::Watch(id, revents) => {
                let due = lock(l)
                    .watches
                    .get(&id)
                    .filter(|w| !w.removed && w.events != 0)
                    .map(|w| (w.cb, w.libvirt_fd, w.opaque));
                if let Some((Some(cb), fd, opaque)) = due {
                    // SAFETY: libvirt's callback with its documented
                    // arguments, for a watch not removed (module doc).
                    unsafe { cb(id, fd, revents, opaque) };
                }
            }
            Ready::Timer(id) => {
                let due = lock(l)
                    .timers
                    .get(&id)
                    .filter(|t| !t.removed)
                    .map(|t| (t.cb, t.fd, t.opaque));
                if let Some((cb, fd, opaque)) = due {
                    drain(fd);
                    if let Some(cb) = cb {
                        // SAFETY: as above, for a timeout not removed.
                        unsafe { cb(id, opaque) };
                    }
                }
            }
        }
    }
    free_removed(l);
}

/// Closes and forgets removed entries, then calls their free callbacks,
/// without the lock (libvirt's free callbacks may take its own locks and
/// call back into us).
fn free_removed(l: &Loop) {
    // (free callback, opaque, our fd to close if any)
    let mut frees: Vec<(sys::virFreeCallback, *mut c_void, Option<c_int>)> = Vec::new();
    {
        let mut e = lock(l);
        e.watches.retain(|_, w| {
            if w.removed {
                frees.push((w.ff, w.opaque, w.owned.then_some(w.fd)));
            }
            !w.removed
        });
        e.timers.retain(|_, t| {
            if t.removed {
                frees.push((t.ff, t.opaque, Some(t.fd)));
            }
            !t.removed
        });
    }
    for (ff, opaque, fd) in frees {
        if let Some(fd) = fd {
            // SAFETY: our fd, out of the epoll set, closed once, here.
            unsafe { libc::close(fd) };
        }
        if let Some(ff) = ff {
            // SAFETY: the entry is gone, so no callback can follow; this is
            // the one call of libvirt's free callback (module doc).
            unsafe { ff(opaque) };
        }
    }
}

/// Registers this implementation with libvirt and starts its thread, named
/// `thread_name`. Must run before the first connection is opened, once.
pub fn register(thread_name: &str) -> std::io::Result<()> {
    if LOOP.get().is_some() {
        return Ok(());
    }
    // SAFETY: creating fds has no memory effects.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let wake_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if wake_fd < 0
        || !epoll_ctl(
            epoll,
            libc::EPOLL_CTL_ADD,
            wake_fd,
            libc::EPOLLIN as u32,
            WAKE,
        )
    {
        let err = std::io::Error::last_os_error();
        // SAFETY: our fds, closed once, here.
        unsafe {
            libc::close(epoll);
            if wake_fd >= 0 {
                libc::close(wake_fd);
            }
        }
        return Err(err);
    }
    let l = LOOP.get_or_init(|| Loop {
        epoll,
        wake: wake_fd,
        entries: Mutex::default(),
    });
    std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || loop {
            run_once(l);
        })?;
    // SAFETY: six functions of the signatures libvirt declares for them.
    unsafe {
        sys::virEventRegisterImpl(
            Some(add_handle),
            Some(update_handle),
            Some(remove_handle),
            Some(add_timeout),
            Some(update_timeout),
            Some(remove_timeout),
        )
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::mpsc::{channel, Receiver, Sender},
        time::Duration,
    };

    #[test]
    fn masks_translate_both_ways() {
        let rw = (sys::VIR_EVENT_HANDLE_READABLE | sys::VIR_EVENT_HANDLE_WRITABLE) as c_int;
        assert_eq!(epoll_events(rw), (libc::EPOLLIN | libc::EPOLLOUT) as u32);
        assert_eq!(epoll_events(0), 0, "no events: out of the epoll set");
        let all = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32;
        assert_eq!(libvirt_events(all), rw | 4 | 8);
    }

    /// What the test callbacks report, tagged with the watch or timer id.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Readable(c_int),
        Fired(c_int),
        Freed,
    }

    unsafe extern "C" fn on_fd(watch: c_int, fd: c_int, events: c_int, opaque: *mut c_void) {
        // SAFETY: `opaque` is the test's leaked `Sender`, freed only by
        // `free_tx` after the last callback.
        let tx = unsafe { &*(opaque as *const Sender<Seen>) };
        if events & sys::VIR_EVENT_HANDLE_READABLE as c_int != 0 {
            drain(fd);
            let _ = tx.send(Seen::Readable(watch));
        }
    }

    /// Reports readiness without reading: fires until removed.
    unsafe extern "C" fn on_fd_keep(watch: c_int, _fd: c_int, events: c_int, opaque: *mut c_void) {
        // SAFETY: as in `on_fd`.
        let tx = unsafe { &*(opaque as *const Sender<Seen>) };
        if events & sys::VIR_EVENT_HANDLE_READABLE as c_int != 0 {
            let _ = tx.send(Seen::Readable(watch));
        }
    }

    unsafe extern "C" fn on_timer(timer: c_int, opaque: *mut c_void) {
        // SAFETY: as in `on_fd`.
        let tx = unsafe { &*(opaque as *const Sender<Seen>) };
        let _ = tx.send(Seen::Fired(timer));
    }

    unsafe extern "C" fn free_tx(opaque: *mut c_void) {
        // SAFETY: the `Box` leaked by `leak`, freed once, by libvirt's rule.
        let tx = unsafe { Box::from_raw(opaque as *mut Sender<Seen>) };
        let _ = tx.send(Seen::Freed);
    }

    fn leak() -> (*mut c_void, Receiver<Seen>) {
        let (tx, rx) = channel();
        (Box::into_raw(Box::new(tx)) as *mut c_void, rx)
    }

    fn quiet(rx: &Receiver<Seen>) -> bool {
        rx.recv_timeout(Duration::from_millis(150)).is_err()
    }

    fn next(rx: &Receiver<Seen>) -> Option<Seen> {
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Through libvirt's own entry points (`virEventAddHandle` and friends
    /// dispatch to the registered implementation): a watch fires while it
    /// asks for READABLE, stays silent with no events and after removal,
    /// and its free callback runs exactly once; the same for a timeout.
    #[test]
    fn watches_and_timeouts_keep_libvirts_rules() {
        crate::pool::ensure_event_loop();
        let mut fds = [0 as c_int; 2];
        // SAFETY: `fds` has room for the two ends.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        assert_eq!(rc, 0, "pipe2");
        let write = |fd: c_int| {
            // SAFETY: one byte from a live local into our pipe.
            unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
        };
        let (opaque, rx) = leak();
        let readable = sys::VIR_EVENT_HANDLE_READABLE as c_int;
        // SAFETY: a live fd, our callbacks, and an opaque they understand.
        let watch =
            unsafe { sys::virEventAddHandle(fds[0], readable, Some(on_fd), opaque, Some(free_tx)) };
        assert!(watch > 0, "watch id {watch}");
        write(fds[1]);
        assert_eq!(next(&rx), Some(Seen::Readable(watch)));
        // SAFETY: a watch this test added and has not removed.
        unsafe { sys::virEventUpdateHandle(watch, 0) };
        write(fds[1]);
        assert!(quiet(&rx), "a watch with no events must not fire");
        // SAFETY: as above.
        unsafe { sys::virEventUpdateHandle(watch, readable) };
        assert_eq!(next(&rx), Some(Seen::Readable(watch)), "given back: fires");
        // SAFETY: as above.
        assert_eq!(unsafe { sys::virEventRemoveHandle(watch) }, 0);
        write(fds[1]);
        let rest: Vec<Seen> = std::iter::from_fn(|| next(&rx)).collect();
        assert_eq!(rest, [Seen::Freed], "no callback after removal, one free");
        // SAFETY: removed already: libvirt's contract is -1.
        assert_eq!(unsafe { sys::virEventRemoveHandle(watch) }, -1);

        // Two live watches on one fd (the second watches a dup): both fire.
        let (one, rx1) = leak();
        let (two, rx2) = leak();
        // SAFETY: a live fd, our callbacks, and opaques they understand.
        let (w1, w2) = unsafe {
            (
                sys::virEventAddHandle(fds[0], readable, Some(on_fd_keep), one, Some(free_tx)),
                sys::virEventAddHandle(fds[0], readable, Some(on_fd_keep), two, Some(free_tx)),
            )
        };
        assert!(w1 > 0 && w2 > 0 && w1 != w2, "watch ids {w1} {w2}");
        write(fds[1]);
        assert_eq!(next(&rx1), Some(Seen::Readable(w1)));
        assert_eq!(next(&rx2), Some(Seen::Readable(w2)));
        // SAFETY: watches this test added and has not removed.
        unsafe {
            assert_eq!(sys::virEventRemoveHandle(w1), 0);
            assert_eq!(sys::virEventRemoveHandle(w2), 0);
        }
        for rx in [rx1, rx2] {
            let rest: Vec<Seen> = std::iter::from_fn(|| next(&rx)).collect();
            assert_eq!(rest.last(), Some(&Seen::Freed), "{rest:?}");
        }
        drain(fds[0]);

        let (opaque, rx) = leak();
        // SAFETY: our callbacks and an opaque they understand.
        let timer = unsafe { sys::virEventAddTimeout(20, Some(on_timer), opaque, Some(free_tx)) };
        assert!(timer > 0, "timer id {timer}");
        assert_eq!(next(&rx), Some(Seen::Fired(timer)));
        assert_eq!(next(&rx), Some(Seen::Fired(timer)), "a timeout repeats");
        // SAFETY: a timer this test added and has not removed.
        unsafe { sys::virEventUpdateTimeout(timer, -1) };
        while rx.recv_timeout(Duration::from_millis(50)).is_ok() {}
        assert!(quiet(&rx), "disabled: silent");
        // SAFETY: as above.
        unsafe { sys::virEventUpdateTimeout(timer, 0) };
        assert_eq!(
            next(&rx),
            Some(Seen::Fired(timer)),
            "0: on the next iteration"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { sys::virEventRemoveTimeout(timer) }, 0);
        let rest: Vec<Seen> = std::iter::from_fn(|| next(&rx)).collect();
        assert_eq!(rest.last(), Some(&Seen::Freed), "freed last: {rest:?}");
        assert_eq!(rest.iter().filter(|s| **s == Seen::Freed).count(), 1);
        // SAFETY: our pipe's two ends, closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
