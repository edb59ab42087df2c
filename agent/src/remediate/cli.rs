//! The `vigil-agent actions ...` subcommands' bodies: `actions list` prints the configured
//! actions as a table; `actions run NAME [--dry-run]` runs one (or shows what would run)
//! through the same [`Remediator`] rules and audit log as the daemon.

use super::config::ActionConfig;
use super::{Outcome, Remediator, RunRequest, Trigger};

/// The `actions list` table: name, remote, dry-run, timeout, cooldown, flap guard, user,
/// command line.
pub fn actions_table(actions: &[ActionConfig]) -> String {
    let d = vigil_shared::duration::format;
    let mut rows = vec![[
        "NAME".to_string(),
        "REMOTE".into(),
        "DRY_RUN".into(),
        "TIMEOUT".into(),
        "COOLDOWN".into(),
        "FLAP_GUARD".into(),
        "USER".into(),
        "COMMAND".into(),
    ]];
    for a in actions {
        let mut cmd = vec![a.command.display().to_string()];
        cmd.extend(a.args.iter().map(|s| {
            if s.is_empty() || s.contains(char::is_whitespace) {
                format!("{s:?}")
            } else {
                s.clone()
            }
        }));
        rows.push([
            a.name.clone(),
            if a.allow_remote { "yes" } else { "no" }.into(),
            if a.dry_run { "yes" } else { "no" }.into(),
            d(a.timeout()),
            d(a.cooldown()),
            format!("{}/{}", a.flap_max_runs(), d(a.flap_window())),
            a.user.clone().unwrap_or_else(|| "-".into()),
            cmd.join(" "),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 7 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `actions run NAME [--dry-run]`: runs the action as an operator request (the requester is
/// `$SUDO_USER`, else `$USER`, else the uid), and returns the text to print and whether the
/// command succeeded (exit 0, or a dry run). Refusals are `Err` with the message to print.
pub async fn run_action(
    remediator: &Remediator,
    name: &str,
    dry_run: bool,
) -> Result<(String, bool), String> {
    let requested_by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    let report = remediator
        .run(RunRequest {
            action: name.to_string(),
            trigger: Trigger::Cli { requested_by },
            dry_run,
        })
        .await
        .map_err(|e| e.to_string())?;
    let ok = matches!(report.outcome, Outcome::Ok | Outcome::DryRun);
    Ok((report.render(), ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_action_with_its_defaults() {
        let a: Vec<ActionConfig> = toml::from_str::<toml::Table>(
            "[[a]]\nname='restart_app'\ncommand='/bin/true'\nargs=['x y']\nallow_remote=true\n[[a]]\nname='b'\ncommand='/bin/false'\ncooldown='0'\n",
        )
        .unwrap()["a"]
            .clone()
            .try_into()
            .unwrap();
        let t = actions_table(&a);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("restart_app  yes"), "{t}");
        assert!(lines[1].ends_with("/bin/true \"x y\""), "{t}");
        assert!(
            lines[1].contains("1m") && lines[1].contains("5m") && lines[1].contains("3/1h"),
            "{t}"
        );
        assert!(lines[2].contains(" 0s "), "{t}");
    }
}
