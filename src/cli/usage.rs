//! `usage`: every tenant's usage in a month, as a table per tenant or CSV.

use std::fmt::Write;

use chrono::Utc;
use clap::Args;

use super::{CliError, DbArgs};
use crate::domain::usage::Month;
use crate::store::{self, OpenOptions, Role, UsageRow};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The month, YYYY-MM (UTC); default: the current month
    #[arg(long, value_parser = month)]
    pub month: Option<Month>,
    /// Only this tenant (its name)
    #[arg(long)]
    pub tenant: Option<String>,
    /// CSV with a header line instead of tables
    #[arg(long)]
    pub csv: bool,
}

fn month(raw: &str) -> Result<Month, String> {
    Month::parse(raw).ok_or_else(|| "a month, like 2026-12".into())
}

const HEADER: [&str; 7] = ["tenant", "account", "country", "calls_placed", "calls_taken", "call_seconds", "sms"];

/// A CSV field, quoted when it must be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn numbers(r: &UsageRow) -> [u64; 4] {
    [r.calls_placed, r.calls_taken, r.call_seconds, r.sms]
}

/// The rows as CSV (with its header line).
pub fn csv(rows: &[(String, UsageRow)]) -> String {
    let mut out = HEADER.join(",");
    for (tenant, r) in rows {
        let [p, t, s, m] = numbers(r);
        let _ = write!(out, "\n{},{},{},{p},{t},{s},{m}", field(tenant), field(&r.account), field(&r.country));
    }
    out
}

/// The rows as one table per tenant, each with its totals.
pub fn tables(month: Month, rows: &[(String, UsageRow)]) -> String {
    if rows.is_empty() {
        return format!("no usage in {month}");
    }
    let mut out = String::new();
    let mut tenants: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    tenants.dedup();
    for tenant in tenants {
        let mine: Vec<&UsageRow> = rows.iter().filter(|(t, _)| t == tenant).map(|(_, r)| r).collect();
        let mut lines: Vec<[String; 6]> = vec![std::array::from_fn(|i| HEADER[i + 1].to_owned())];
        let mut totals = [0u64; 4];
        for r in &mine {
            let n = numbers(r);
            totals.iter_mut().zip(n).for_each(|(t, v)| *t += v);
            lines.push([
                r.account.clone(),
                r.country.clone(),
                n[0].to_string(),
                n[1].to_string(),
                n[2].to_string(),
                n[3].to_string(),
            ]);
        }
        let [p, t, s, m] = totals.map(|v| v.to_string());
        lines.push(["total".into(), String::new(), p, t, s, m]);
        let widths: Vec<usize> =
            (0..6).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{tenant} — {month}");
        for l in &lines {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| if i < 2 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
    }
    out.trim_end().to_owned()
}

/// Runs `usage`: what to print, or `Err` (exit 1) naming what is wrong.
pub async fn usage(args: UsageArgs, config: Option<&std::path::Path>) -> Result<String, CliError> {
    let store = store::open(&args.db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    let month = args.month.unwrap_or_else(|| Month::of(Utc::now()));
    if let Some(name) = &args.tenant
        && !store.list_tenants().await?.iter().any(|t| &t.name == name)
    {
        return Err(CliError::Usage(format!("no tenant named {name:?}")));
    }
    let mut rows = store.usage_month_all(month.start(), month.next_start()).await?;
    if let Some(name) = &args.tenant {
        rows.retain(|(t, _)| t == name);
    }
    Ok(if args.csv { csv(&rows) } else { tables(month, &rows) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, placed: u64, seconds: u64) -> UsageRow {
        UsageRow {
            account: account.into(),
            country: "JP".into(),
            calls_placed: placed,
            call_seconds: seconds,
            ..UsageRow::default()
        }
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_it_must() {
        let rows = vec![("acme, inc".to_owned(), row("tokyo", 2, 61))];
        assert_eq!(
            csv(&rows),
            "tenant,account,country,calls_placed,calls_taken,call_seconds,sms\n\"acme, inc\",tokyo,JP,2,0,61,0"
        );
    }

    #[test]
    fn a_table_per_tenant_with_its_totals() {
        let month = Month::parse("2026-12").unwrap();
        let rows = vec![
            ("acme".to_owned(), row("osaka", 1, 10)),
            ("acme".to_owned(), row("tokyo", 2, 20)),
            ("beta".to_owned(), row("tokyo", 3, 30)),
        ];
        let out = tables(month, &rows);
        assert!(out.starts_with("acme — 2026-12\n"), "{out}");
        assert!(out.contains("\nbeta — 2026-12\n"), "{out}");
        let acme_total = out.lines().find(|l| l.starts_with("total")).unwrap();
        assert_eq!(acme_total.split_whitespace().collect::<Vec<_>>(), ["total", "3", "0", "30", "0"]);
        assert_eq!(tables(month, &[]), "no usage in 2026-12");
    }
}
