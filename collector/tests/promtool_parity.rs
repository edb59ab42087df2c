//! Differential test of `check rules` and `test rules` against the real `/usr/bin/promtool`:
//! the same rule files and unit-test files (in `tests/rules/`) go through both, and the exit
//! codes, the SUCCESS/FAILED verdict lines and (where the text is ours to match) the whole
//! output must agree; only the wording of PromQL parse errors (from promql-parser) may differ. promtool missing is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_collector::rules::promtool::{check_rules_command, test_rules_command};

const PROMTOOL: &str = "/usr/bin/promtool";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str], files: &[PathBuf]) -> (String, String, i32) {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install the Debian 'prometheus' package"
    );
    let out = Command::new(PROMTOOL)
        .args(args)
        .args(files)
        .current_dir(crate_dir())
        .output()
        .expect("running promtool");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The verdict lines: `SUCCESS...` / `FAILED:` and the `Checking`/`Unit Testing` headers.
fn verdicts(stdout: &str, stderr: &str) -> Vec<String> {
    stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| {
            l.contains("SUCCESS")
                || l.contains("FAILED")
                || l.starts_with("Checking")
                || l.starts_with("Unit Testing")
        })
        .map(str::to_string)
        .collect()
}

/// PromQL parse errors come from the promql-parser crate and are worded differently from
/// Go's; the rest of such a line (file, position, group, rule) must still match. The lines
/// are compared as a sorted multiset: promtool walks a rule's annotations in Go map order,
/// which is random, so its own error order changes from run to run.
fn normalize(stderr: &str) -> String {
    let mut lines: Vec<&str> = stderr
        .lines()
        .map(|l| match l.find("could not parse expression: ") {
            Some(i) => &l[..i + "could not parse expression:".len()],
            None => l,
        })
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn rel(name: &str) -> PathBuf {
    PathBuf::from("tests/rules").join(name)
}

/// Runs both with the crate directory as the working directory (promtool prints paths as
/// given, so both see the same relative paths).
fn ours(f: fn(&[PathBuf]) -> (String, String, i32), files: &[PathBuf]) -> (String, String, i32) {
    std::env::set_current_dir(crate_dir()).expect("cd to crate dir");
    f(files)
}

struct Case {
    file: &'static str,
    /// Whole stdout and stderr must match byte for byte.
    exact: bool,
}

const TEST_CASES: &[Case] = &[
    Case {
        file: "t01-for-pending-firing.yml",
        exact: true,
    },
    Case {
        file: "t02-keep-firing-for.yml",
        exact: true,
    },
    Case {
        file: "t03-templates.yml",
        exact: true,
    },
    Case {
        file: "t04-recording.yml",
        exact: true,
    },
    Case {
        file: "t05-failing-alert.yml",
        exact: true,
    },
    Case {
        file: "t06-failing-expr.yml",
        exact: true,
    },
    Case {
        file: "t07-series-notation.yml",
        exact: true,
    },
    Case {
        file: "t08-group-eval-order.yml",
        exact: true,
    },
    Case {
        file: "t09-duplicate-labelset.yml",
        exact: true,
    },
    Case {
        file: "t10-limit.yml",
        exact: true,
    },
    Case {
        file: "t11-resolve-refire.yml",
        exact: true,
    },
    Case {
        file: "t12-bad-rule-file.yml",
        exact: true,
    },
    Case {
        file: "t14-formatting.yml",
        exact: true,
    },
    Case {
        file: "t13-seed.yml",
        exact: true,
    },
    // Expected values copied from promtool's output and compared exactly by both: a ratio
    // of rates, and histogram_quantile of rates, bit-identical to Prometheus 2.42.
    Case {
        file: "t15-ratio-rule.yml",
        exact: true,
    },
    Case {
        file: "t16-histogram-quantile-rule.yml",
        exact: true,
    },
];

const CHECK_CASES: &[Case] = &[
    Case {
        file: "seed-alerting-rules-advanced.yaml",
        exact: true,
    },
    Case {
        file: "basic-rules.yml",
        exact: true,
    },
    Case {
        file: "order-rules.yml",
        exact: true,
    },
    Case {
        file: "format-rules.yml",
        exact: true,
    },
    Case {
        file: "limit-rules.yml",
        exact: true,
    },
    Case {
        file: "dup-rules.yml",
        exact: true,
    },
    Case {
        file: "bad-rules.yml",
        exact: true,
    },
    Case {
        file: "unknown-field-rules.yml",
        exact: true,
    },
    Case {
        file: "ratio-rules.yml",
        exact: true,
    },
];

fn compare(
    kind: &str,
    case: &Case,
    theirs: (String, String, i32),
    mine: (String, String, i32),
) -> Option<String> {
    let mut problems = Vec::new();
    if theirs.2 != mine.2 {
        problems.push(format!(
            "exit code: promtool {} vs ours {}",
            theirs.2, mine.2
        ));
    }
    let (tv, mv) = (verdicts(&theirs.0, &theirs.1), verdicts(&mine.0, &mine.1));
    if tv != mv {
        problems.push(format!("verdicts: promtool {tv:?} vs ours {mv:?}"));
    }
    if case.exact && (theirs.0 != mine.0 || normalize(&theirs.1) != normalize(&mine.1)) {
        problems.push(format!(
            "output differs:\n--- promtool stdout\n{}--- ours stdout\n{}--- promtool stderr\n{}--- ours stderr\n{}",
            theirs.0, mine.0, theirs.1, mine.1
        ));
    }
    (!problems.is_empty()).then(|| format!("{kind} {}: {}", case.file, problems.join("\n")))
}

#[test]
fn test_rules_matches_promtool() {
    let mut failures = Vec::new();
    for case in TEST_CASES {
        let files = vec![rel(case.file)];
        let theirs = promtool(&["test", "rules"], &files);
        let mine = ours(test_rules_command, &files);
        failures.extend(compare("test rules", case, theirs, mine));
    }
    // Several files in one run, and a missing file.
    let files: Vec<PathBuf> = ["t01-for-pending-firing.yml", "t06-failing-expr.yml"]
        .iter()
        .map(|f| rel(f))
        .collect();
    let all = Case {
        file: "t01+t06",
        exact: true,
    };
    failures.extend(compare(
        "test rules",
        &all,
        promtool(&["test", "rules"], &files),
        ours(test_rules_command, &files),
    ));
    let missing = vec![rel("no-such-file.yml")];
    let m = Case {
        file: "missing file",
        exact: true,
    };
    failures.extend(compare(
        "test rules",
        &m,
        promtool(&["test", "rules"], &missing),
        ours(test_rules_command, &missing),
    ));
    println!(
        "test rules: {} of {} cases agree",
        TEST_CASES.len() + 2 - failures.len(),
        TEST_CASES.len() + 2
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The ratio and histogram_quantile rule tests hold values copied from promtool's output,
/// compared exactly: both tools must pass them (agreeing on a failure is not enough), so a
/// last-bit difference in Vigil's rate, sum, division or bucket interpolation fails here.
#[test]
fn promtool_values_of_rate_rules_pass_in_both() {
    for file in ["t15-ratio-rule.yml", "t16-histogram-quantile-rule.yml"] {
        let files = vec![rel(file)];
        let theirs = promtool(&["test", "rules"], &files);
        assert_eq!(theirs.2, 0, "promtool on {file}: {}{}", theirs.0, theirs.1);
        let mine = ours(test_rules_command, &files);
        assert_eq!(mine.2, 0, "vigil on {file}: {}{}", mine.0, mine.1);
        assert!(mine.0.contains("SUCCESS"), "vigil on {file}: {}", mine.0);
    }
}

#[test]
fn check_rules_matches_promtool() {
    let mut failures = Vec::new();
    for case in CHECK_CASES {
        let files = vec![rel(case.file)];
        let theirs = promtool(&["check", "rules"], &files);
        let mine = ours(check_rules_command, &files);
        failures.extend(compare("check rules", case, theirs, mine));
    }
    let files: Vec<PathBuf> = ["bad-rules.yml", "seed-alerting-rules-advanced.yaml"]
        .iter()
        .map(|f| rel(f))
        .collect();
    let both = Case {
        file: "bad+seed",
        exact: true,
    };
    failures.extend(compare(
        "check rules",
        &both,
        promtool(&["check", "rules"], &files),
        ours(check_rules_command, &files),
    ));
    println!(
        "check rules: {} of {} cases agree",
        CHECK_CASES.len() + 1 - failures.len(),
        CHECK_CASES.len() + 1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
