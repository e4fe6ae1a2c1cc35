//! Logs written to a pipe (a file, a log collector) carry no terminal colour
//! codes; `--log-format json` writes one JSON object per line (issue 11,
//! point 2). Runs the real binary with its stderr piped.

mod common;

use common::Proc;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");

/// Log lines of `local` replaying the sample file, up to the one that says
/// the replay finished.
fn log_lines(format: &str) -> Vec<String> {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/ticks.ndjson");
    let mut child = Proc(
        Command::new(BIN)
            .args(["--log-format", format, "local", "--listen", "127.0.0.1:0"])
            .args([
                "--source",
                &format!("replay:{sample}"),
                "--replay-speed",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let done = line.contains("replay finished");
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("the process ended before the replay finished: {lines:?}");
}

#[test]
fn text_logs_to_a_pipe_have_no_escape_codes() {
    let lines = log_lines("text");
    assert!(lines.iter().any(|l| l.contains("INFO")), "{lines:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    for line in log_lines("json") {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(value["level"].is_string(), "{line}");
    }
}
