//! A progress bar for the waits the examples narrate (a token's expiry, a grace window).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant, SystemTime};

const WIDTH: usize = 30;
const TICK: Duration = Duration::from_millis(100);

/// Sleeps until the wall clock reaches `deadline`, drawing a bar labelled `label` on a terminal (one
/// summary line when the output is not a terminal, so logs stay readable).
pub async fn wait_until(deadline: SystemTime, label: &str) {
    let total = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let started = Instant::now();
    let mut out = std::io::stdout();
    let animate = out.is_terminal();
    while started.elapsed() < total {
        if animate {
            let elapsed = started.elapsed();
            let filled = (WIDTH as f64 * elapsed.as_secs_f64() / total.as_secs_f64()) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled.min(WIDTH)),
                ".".repeat(WIDTH - filled.min(WIDTH))
            );
            // A failed write to the terminal only costs the animation.
            let _ = write!(
                out,
                "\r{label}  [{bar}] {:.1} s / {:.1} s ",
                elapsed.as_secs_f64(),
                total.as_secs_f64()
            );
            let _ = out.flush();
        }
        tokio::time::sleep(TICK.min(total.saturating_sub(started.elapsed()))).await;
    }
    let done = format!(
        "{label}  [{}] {:.1} s",
        "#".repeat(WIDTH),
        total.as_secs_f64()
    );
    // On a terminal, return to the line start and clear the animated line (ANSI "erase line") first.
    let _ = writeln!(out, "{}{done}", if animate { "\r\x1b[2K" } else { "" });
}
