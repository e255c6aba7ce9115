//! Standard output of the commands, as a well-kept Unix tool writes it: a reader that goes
//! away early (`dupdesk export decisions | head`) is normal in a shell, so a closed pipe ends
//! nothing a command is doing (a demo still builds its workspace, an `apply` still finishes
//! the merge it is in) and the command exits 0 without a word. Any other failure to write
//! (a full disk under `> log`) is said once on standard error.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Write `text` to standard output; see the module doc for what a failure does.
pub fn write(text: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        failed(&e);
    }
}

/// Note a failed write to standard output: a closed pipe stops all further output.
pub fn failed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
    } else if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("dupdesk: warning: writing the output failed: {e}");
    }
}

/// Whether standard output's reader went away.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Whether `e` is, at bottom, a write to a pipe whose reader went away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|csv| {
                matches!(csv.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}

/// `crate::outln!` for the commands: through [`write`].
#[macro_export]
macro_rules! outln {
    () => { $crate::ui::cli::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::ui::cli::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for the commands: through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::ui::cli::out::write(format_args!($($arg)*)) };
}
