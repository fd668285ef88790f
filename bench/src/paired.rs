//! `cib-bench paired`: two commands run in turns, for a ratio that the
//! drift of a shared machine does not bias.
//!
//! hyperfine runs all of one command's runs, then all of the other's; on a
//! virtual machine whose speed drifts within a minute, the two blocks can
//! meet different machines. Here each round runs both commands back to
//! back (the first of the pair alternating), so both see the same minute;
//! the ratio of each pair is taken, and the median of those ratios is the
//! figure reported, with its quartiles.
//!
//! Commands are split on white space and run directly, or, with `--shell`,
//! both are run by `sh -c` (for pipelines and redirections; the shell's own
//! start-up is then in both times alike).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context as _};

/// Options of one paired comparison.
pub struct Options<'a> {
    /// Name and command line of ours (split on white space, no shell).
    pub ours: (&'a str, &'a str),
    /// Name and command line of the anchor.
    pub anchor: (&'a str, &'a str),
    /// Rounds measured (each runs both commands once).
    pub rounds: usize,
    /// Rounds run first and not measured.
    pub warmup: usize,
    /// CSV of every round (milliseconds), if wanted.
    pub csv: Option<&'a Path>,
    /// Run both command lines with `sh -c` instead of splitting them.
    pub shell: bool,
}

/// Runs the comparison; returns a markdown table and the summary lines
/// (`ratio anchor/ours: ...`), ready to print.
pub fn run(opts: &Options<'_>) -> anyhow::Result<String> {
    ensure!(opts.rounds > 0, "--rounds must be at least 1");
    let time = |command: &str| time(command, opts.shell);
    for _ in 0..opts.warmup {
        time(opts.ours.1)?;
        time(opts.anchor.1)?;
    }
    let mut rows = Vec::with_capacity(opts.rounds);
    for round in 0..opts.rounds {
        // The first of the pair alternates: neither always follows the other.
        let (ours, anchor) = if round % 2 == 0 {
            let o = time(opts.ours.1)?;
            (o, time(opts.anchor.1)?)
        } else {
            let a = time(opts.anchor.1)?;
            (time(opts.ours.1)?, a)
        };
        rows.push((ours, anchor));
    }
    if let Some(path) = opts.csv {
        let mut csv = String::from("round,ours_ms,anchor_ms\n");
        for (i, (o, a)) in rows.iter().enumerate() {
            let _ = writeln!(csv, "{},{o:.2},{a:.2}", i + 1);
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report(opts, &rows))
}

/// Wall-clock milliseconds of one run of `command`, which must succeed.
fn time(command: &str, shell: bool) -> anyhow::Result<f64> {
    let mut cmd = if shell {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(command);
        sh
    } else {
        let mut words = command.split_whitespace();
        let mut cmd = Command::new(words.next().context("empty command")?);
        cmd.args(words);
        cmd
    };
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {command}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    ensure!(status.success(), "`{command}` failed: {status}");
    Ok(ms)
}

/// The table and the ratios of `rows` (ours, anchor).
fn report(opts: &Options<'_>, rows: &[(f64, f64)]) -> String {
    let ours: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let anchor: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut out = String::from("| Command | Mean [ms] | Median [ms] | Min [ms] | Max [ms] |\n|:---|---:|---:|---:|---:|\n");
    for (name, v) in [(opts.ours.0, &ours), (opts.anchor.0, &anchor)] {
        let s = sorted(v);
        let _ = writeln!(
            out,
            "| `{name}` | {:.1} | {:.1} | {:.1} | {:.1} |",
            v.iter().sum::<f64>() / v.len() as f64,
            quantile(&s, 0.5),
            s[0],
            s[s.len() - 1]
        );
    }
    let ratios = sorted(&rows.iter().map(|(o, a)| a / o).collect::<Vec<_>>());
    let _ = writeln!(
        out,
        "\n{} rounds, each running both commands back to back (the first of the pair alternating).\n\n\
         ratio anchor/ours: median {:.2}, quartiles {:.2}–{:.2}, lowest {:.2}\n\
         overhead ours/anchor: median {:+.1} %, quartiles {:+.1}–{:+.1} %, highest {:+.1} %",
        rows.len(),
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        ratios[0],
        100.0 * (1.0 / quantile(&ratios, 0.5) - 1.0),
        100.0 * (1.0 / quantile(&ratios, 0.75) - 1.0),
        100.0 * (1.0 / quantile(&ratios, 0.25) - 1.0),
        100.0 * (1.0 / ratios[0] - 1.0),
    );
    out
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The `q` quantile of sorted `s` (linear between the nearest ranks).
fn quantile(s: &[f64], q: f64) -> f64 {
    let at = q * (s.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (at - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.25), 7.0);
    }

    #[test]
    fn the_report_takes_the_median_of_the_pairs_ratios() {
        let opts = Options {
            ours: ("o", "true"),
            anchor: ("a", "true"),
            rounds: 3,
            warmup: 0,
            csv: None,
            shell: false,
        };
        // Drift: the machine slows down by half between rounds; each pair
        // still says 10x.
        let text = report(&opts, &[(10.0, 100.0), (15.0, 150.0), (20.0, 400.0)]);
        assert!(text.contains("ratio anchor/ours: median 10.00"), "{text}");
        assert!(text.contains("lowest 10.00"), "{text}");
        assert!(text.contains("| `o` | 15.0 | 15.0 | 10.0 | 20.0 |"), "{text}");
    }

    #[test]
    fn runs_commands_and_refuses_a_failing_one() {
        let opts = Options {
            ours: ("o", "true"),
            anchor: ("a", "false"),
            rounds: 1,
            warmup: 0,
            csv: None,
            shell: false,
        };
        let err = run(&opts).unwrap_err().to_string();
        assert!(err.contains("`false` failed"), "{err}");
    }

    #[test]
    fn shell_mode_runs_pipelines() {
        let opts = Options {
            ours: ("o", "true | cat > /dev/null && test 1 -le 2"),
            anchor: ("a", "exit 0"),
            rounds: 2,
            warmup: 1,
            csv: None,
            shell: true,
        };
        let text = run(&opts).expect("both succeed");
        assert!(text.contains("2 rounds"), "{text}");
        let failing = Options { anchor: ("a", "exit 3"), ..opts };
        assert!(run(&failing).is_err());
    }
}
