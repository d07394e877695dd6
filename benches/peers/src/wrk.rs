//! Running wrk and reading its report.

use anyhow::{Context, Result, bail};

use crate::pinning::Pinning;

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Requests per second.
    pub(crate) rps: f64,
    /// 99th percentile latency, microseconds.
    pub(crate) p99_us: f64,
    /// Requests completed.
    pub(crate) requests: u64,
    /// Responses that were not 2xx or 3xx.
    pub(crate) non_success: u64,
    /// Connect, read, write and timeout errors.
    pub(crate) socket_errors: u64,
}

/// Load settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Keep-alive connections.
    pub(crate) connections: u32,
}

/// Runs wrk (one thread) against `port` with `token` as the bearer token, for `seconds`.
pub(crate) fn run(
    pinning: &Pinning,
    load: Load,
    seconds: u32,
    port: u16,
    token: Option<&str>,
) -> Result<Sample> {
    let mut command = pinning.load("wrk");
    command
        .arg("-t1")
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("--latency");
    if let Some(token) = token {
        command
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"));
    }
    command.arg(format!("http://127.0.0.1:{port}/"));
    let output = command
        .output()
        .context("running wrk (is it installed? scripts/bench.sh installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

/// Parses wrk's `--latency` report.
pub(crate) fn parse(report: &str) -> Result<Sample> {
    let mut rps = None;
    let mut p99_us = None;
    let mut requests = None;
    let mut non_success = 0;
    let mut socket_errors = 0;
    for line in report.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = Some(value.trim().parse::<f64>()?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_us = Some(duration_us(value.trim())?);
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_success = value.trim().parse()?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = value
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .map(str::parse::<u64>)
                .sum::<Result<u64, _>>()?;
        } else if line.contains(" requests in ") {
            requests = line
                .split_whitespace()
                .next()
                .map(str::parse::<u64>)
                .transpose()?;
        }
    }
    match (rps, p99_us, requests) {
        (Some(rps), Some(p99_us), Some(requests)) => Ok(Sample {
            rps,
            p99_us,
            requests,
            non_success,
            socket_errors,
        }),
        _ => bail!("no Requests/sec, 99% or request count line"),
    }
}

fn duration_us(value: &str) -> Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number,
        "ms" => number * 1_000.0,
        "s" => number * 1_000_000.0,
        "m" => number * 60_000_000.0,
        other => bail!("unknown unit {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 1s test @ http://127.0.0.1:4000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   260.70us   50.14us   2.04ms   89.74%
    Req/Sec   122.37k     5.11k  126.61k    90.00%
  Latency Distribution
     50%  252.00us
     75%  270.00us
     90%  297.00us
     99%    1.50ms
  121676 requests in 1.00s, 14.85MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec: 121550.12
Transfer/sec:     14.84MB
";
        let sample = parse(report).unwrap();
        assert_eq!(sample.requests, 121_676);
        assert_eq!(sample.non_success, 17);
        assert_eq!(sample.socket_errors, 3);
        assert!((sample.rps - 121_550.12).abs() < 1e-6);
        assert!((sample.p99_us - 1_500.0).abs() < 1e-6);
    }
}
