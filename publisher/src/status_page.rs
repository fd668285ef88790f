//! The fleet view as a read-only HTML page (`/status` on the plain-HTTP
//! metrics listener), from files embedded in the binary:
//! `src/status/page.html` (the page, with `{{…}}` slots), `status.css`
//! and `status.js`.
//!
//! The server fills the page with one table per ticket, so it works
//! without JavaScript (it reloads itself every 10 s through a
//! `<meta http-equiv="refresh">` inside `<noscript>`); with JavaScript,
//! `status.js` rebuilds the tables from `/status.json` every 2 s with
//! `textContent` only. Every value that came from a site (names, errors)
//! or from the CIB is HTML-escaped here ([`escape`]), and the page is
//! served with a Content-Security-Policy that allows no inline script.

use std::fmt::Write as _;

use crate::fleet::{FleetReport, SiteReport, TicketReport};

/// The page, with `{{site}}`, `{{summary}}`, `{{summary_class}}` and
/// `{{tickets}}` slots.
const PAGE: &str = include_str!("status/page.html");
/// The stylesheet, served at `/status.css`.
pub const CSS: &str = include_str!("status/status.css");
/// The script, served at `/status.js`.
pub const SCRIPT: &str = include_str!("status/status.js");
/// The Content-Security-Policy of the page: its own script and stylesheet
/// only, and `fetch` of its own origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `text` with `& < > " '` escaped for HTML text and attribute values.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `report`.
#[must_use]
pub fn render(report: &FleetReport) -> String {
    let tickets: String = report.tickets.iter().map(|t| ticket_section(report, t)).collect();
    let (summary, class) = if report.in_step {
        ("Every site in step.", "ok")
    } else {
        ("Not every site in step.", "bad")
    };
    // `{{tickets}}` last: what it holds is escaped, but it must not be
    // searched for the other slots.
    PAGE.replace("{{site}}", &escape(&report.site))
        .replace("{{summary}}", summary)
        .replace("{{summary_class}}", class)
        .replace("{{tickets}}", &tickets)
}

fn ticket_section(report: &FleetReport, t: &TicketReport) -> String {
    let title = match &t.published {
        Some(p) => format!(
            "Ticket {}: version {}, {}, term {}",
            t.ticket,
            p.version,
            p.digest,
            p.term.map_or_else(|| "none".to_owned(), |t| t.to_string())
        ),
        None => format!("Ticket {}: not published here", t.ticket),
    };
    let mut out = format!(
        "<section class=\"ticket\">\n<h2>{}</h2>\n<table>\n<thead><tr><th>site</th><th>state</th><th>applied</th><th>behind</th><th>drift</th><th>pending</th><th>last seen</th><th>error</th></tr></thead>\n<tbody>\n",
        escape(&title)
    );
    for s in &t.sites {
        site_row(&mut out, report.at, s);
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

fn site_row(out: &mut String, now: u64, s: &SiteReport) {
    let state = s.state.as_str();
    let name = if s.allowed {
        s.site.clone()
    } else {
        format!("{} (not on the allow-list)", s.site)
    };
    let applied = s.applied.as_ref().and_then(|a| a.version.clone()).unwrap_or_default();
    let behind = match (s.versions_behind, s.behind_seconds) {
        (_, None) => String::new(),
        (Some(0), _) => "0".to_owned(),
        (v, Some(secs)) => format!("{} ({secs} s)", v.map_or_else(|| "?".to_owned(), |v| v.to_string())),
    };
    let seen = if s.connected {
        "connected".to_owned()
    } else {
        s.last_seen.map_or_else(|| "never".to_owned(), |t| format!("{} s ago", now.saturating_sub(t)))
    };
    let _ = writeln!(
        out,
        "<tr class=\"site {state}\" data-site=\"{site}\"><td>{name}</td><td><span class=\"state {state}\">{state}</span></td><td>{applied}</td><td>{behind}</td><td>{drift}</td><td>{pending}</td><td>{seen}</td><td class=\"error-text\">{error}</td></tr>",
        site = escape(&s.site),
        name = escape(&name),
        applied = escape(&applied),
        drift = s.drift,
        pending = if s.pending { "yes" } else { "no" },
        error = escape(s.error.as_deref().unwrap_or("")),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::SystemTime;

    use cib_net::ack::Ack;

    use super::*;
    use crate::fleet::{report, SiteRecord, TicketInput};
    use crate::publication::Published;

    #[test]
    fn everything_from_the_wire_is_escaped() {
        let hostile = "<script>alert(1)</script> & \"quoted\" 'x' <img src=x onerror=alert(2)>";
        let now = SystemTime::now();
        let mut records = BTreeMap::new();
        records.insert(
            "site-<b>.example".to_owned(),
            SiteRecord {
                ack: Some((Ack::default().with_error(Some(hostile)), now)),
                last_seen: Some(now),
                streams: 0,
            },
        );
        let p = Arc::new(Published::new("geo", "<configuration/>\n".into(), "sha256:aa".into(), "0.1.0".into(), None).unwrap());
        let r = report(
            "site-a",
            now,
            vec![TicketInput {
                ticket: "geo".into(),
                allow: vec!["site-b.example".into()],
                published: Some(p),
                history: vec![],
                records,
            }],
        );
        let page = render(&r);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("site-<b>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;x&#39;"), "{page}");
        assert!(page.contains("data-site=\"site-&lt;b&gt;.example\""), "{page}");
        assert!(page.contains("<span class=\"state not-seen\">not-seen</span>"), "{page}");
        assert!(page.contains("<span class=\"state error\">error</span>"), "{page}");
        assert!(!page.contains("{{"), "{page}");
    }
}
